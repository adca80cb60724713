"""What crosses the scorer boundary, in Python form: the configuration, the
mini-batch (files or rows), columns, and the result.

The wrappers hold the WIT values the host sent and copy nothing until asked:
a column's values are the list the host delivered, and a column returned
unchanged (or from an ONNX run) goes back to the host as it came.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, Union

from . import _bindings as _b

T = TypeVar("T")

#: A result column's element type, as the WIT `column-data` cases name them.
ColumnType = str  # "f32" | "f64" | "s64" | "string" | "bool"
COLUMN_TYPES = ("f32", "f64", "s64", "string", "bool")


class UserError(Exception):
    """Raise it from `init` or `run` to fail the instance start or the whole
    mini-batch (`USER_ERROR`) with exactly this message, no traceback."""


class ItemError:
    """One input item that could not be scored: it counts against
    `error_threshold` but does not fail the mini-batch.

    In a list returned by `run` (one element per item) put
    `ItemError("why")` where the item's row would be; elsewhere
    (`BatchResult.from_columns`) give the item's index: `ItemError("why", item=3)`.
    """

    __slots__ = ("message", "item")

    def __init__(self, message: str, item: int | None = None) -> None:
        self.message = str(message)
        self.item = item

    def __repr__(self) -> str:
        return f"ItemError({self.message!r}, item={self.item!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemError) and (self.message, self.item) == (other.message, other.item)


class Config:
    """What `init` gets: `task.config` (`get`, `require`, `parse_or`),
    `task.program_arguments` (`arguments`) and `environment_variables`
    (`env`). The host's own environment is never visible."""

    __slots__ = ("settings", "arguments", "environment")

    def __init__(
        self,
        settings: Iterable[tuple[str, str]] = (),
        arguments: Iterable[str] = (),
        environment: Iterable[tuple[str, str]] = (),
    ) -> None:
        #: `task.config`, in spec order.
        self.settings: dict[str, str] = dict(settings)
        #: `task.program_arguments`, split like a shell would.
        self.arguments: list[str] = list(arguments)
        #: `environment_variables`.
        self.environment: dict[str, str] = dict(environment)

    @classmethod
    def _from_wit(cls, wit: Any) -> Config:
        return cls(wit.settings, wit.arguments, wit.environment)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A `task.config` value, or `default` when absent."""
        return self.settings.get(key, default)

    def require(self, key: str) -> str:
        """A `task.config` value that must be present (`UserError` if not)."""
        try:
            return self.settings[key]
        except KeyError:
            raise UserError(f"task.config.{key} is required") from None

    def parse_or(self, key: str, default: T) -> T:
        """A `task.config` value converted to the type of `default` (bool,
        int, float, str), or `default` when absent. A value that does not
        convert is a `UserError` naming the key."""
        raw = self.settings.get(key)
        if raw is None:
            return default
        kind = type(default)
        try:
            if kind is bool:
                low = raw.strip().lower()
                if low in ("true", "1", "yes", "on"):
                    return True  # type: ignore[return-value]
                if low in ("false", "0", "no", "off"):
                    return False  # type: ignore[return-value]
                raise ValueError("expected true or false")
            return kind(raw)  # type: ignore[call-arg]
        except (TypeError, ValueError) as e:
            raise UserError(f"task.config.{key} = `{raw}`: not a valid {kind.__name__} ({e})") from None

    def env(self, key: str, default: str | None = None) -> str | None:
        """An `environment_variables` value."""
        return self.environment.get(key, default)

    def __repr__(self) -> str:
        return f"Config(settings={self.settings!r}, arguments={self.arguments!r}, environment={self.environment!r})"


def _column_type(data: Any) -> ColumnType:
    # The WIT case classes are named ColumnData_F32 ... ColumnData_Bool.
    return type(data).__name__.rpartition("_")[2].lower()


def _column_data(kind: ColumnType, values: list[Any]) -> Any:
    t = _b.types
    if kind == "f64":
        return t.ColumnData_F64(values)
    if kind == "s64":
        return t.ColumnData_S64(values)
    if kind == "string":
        return t.ColumnData_String(values)
    if kind == "bool":
        return t.ColumnData_Bool(values)
    if kind == "f32":
        return t.ColumnData_F32(values)
    raise ValueError(f"unknown column type {kind!r}: one of {', '.join(COLUMN_TYPES)}")


_PLACEHOLDER = {"f32": 0.0, "f64": 0.0, "s64": 0, "string": "", "bool": False}


def _infer(name: str, values: Sequence[Any]) -> ColumnType:
    """The column type of Python values: bool, int (s64), float (f64, ints
    allowed), str; `None` is a null."""
    kind: str | None = None
    for i, v in enumerate(values):
        if v is None:
            continue
        t = type(v)
        if t is bool:
            k = "bool"
        elif t is float:
            k = "f64"
        elif t is int:
            k = "s64"
        elif t is str:
            k = "string"
        elif isinstance(v, bool):
            k = "bool"
        elif isinstance(v, int):
            k = "s64"
        elif isinstance(v, float):
            k = "f64"
        elif isinstance(v, str):
            k = "string"
        else:
            raise TypeError(
                f"column `{name}`, row {i}: a {t.__name__} value; a column holds bool, int, float, str or None"
            )
        if kind is None or kind == k:
            kind = k
        elif {kind, k} == {"s64", "f64"}:
            kind = "f64"
        else:
            raise TypeError(f"column `{name}` mixes {kind} and {k} values (row {i}: {v!r})")
    return kind or "string"


class Column:
    """One named column of typed values (`f32`, `f64`, `s64`, `string`,
    `bool`), with nulls.

    `values` is the list as the host delivered it (a null position holds a
    placeholder); `to_list()` gives `None` there. Columns from the
    mini-batch or from an ONNX run go back to the host unchanged, in bulk.
    """

    __slots__ = ("_wit",)

    def __init__(self, wit: Any) -> None:
        self._wit = wit

    @classmethod
    def of(cls, name: str, values: Sequence[Any], type: ColumnType | None = None) -> Column:
        """A column from Python values, `None` meaning null. The type is
        inferred (bool, int -> s64, float -> f64, str) unless given."""
        kind = type or _infer(name, values)
        if kind not in _PLACEHOLDER:
            raise ValueError(f"column `{name}`: unknown type {kind!r}: one of {', '.join(COLUMN_TYPES)}")
        valid: list[bool] | None = None
        if any(v is None for v in values):
            valid = [v is not None for v in values]
            fill = _PLACEHOLDER[kind]
            data = [fill if v is None else v for v in values]
        else:
            data = list(values)
        if kind in ("f64", "f32"):
            data = [float(v) for v in data]
        return cls(_b.types.Column(name=name, data=_column_data(kind, data), valid=valid))

    @property
    def name(self) -> str:
        return self._wit.name  # type: ignore[no-any-return]

    @property
    def type(self) -> ColumnType:
        """`f32`, `f64`, `s64`, `string` or `bool`."""
        return _column_type(self._wit.data)

    @property
    def values(self) -> list[Any]:
        """The values as delivered; a null position holds a placeholder."""
        return self._wit.data.value  # type: ignore[no-any-return]

    @property
    def valid(self) -> list[bool] | None:
        """One flag per row, `False` for null; `None` when no value is null."""
        return self._wit.valid  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._wit.data.value)

    def is_null(self, row: int) -> bool:
        v = self._wit.valid
        return v is not None and not v[row]

    def to_list(self) -> list[Any]:
        """The values with `None` for nulls."""
        values = self._wit.data.value
        valid = self._wit.valid
        if valid is None:
            return list(values)
        return [x if ok else None for x, ok in zip(values, valid)]

    def take(self, rows: Sequence[int]) -> Column:
        """The values at `rows`, in that order, as a new column."""
        # map() over the list's __getitem__ loops in C: inside the sandbox a
        # Python-level loop over every row costs several times more.
        valid = self._wit.valid
        data = type(self._wit.data)(list(map(self._wit.data.value.__getitem__, rows)))
        return Column(
            _b.types.Column(
                name=self._wit.name, data=data, valid=None if valid is None else list(map(valid.__getitem__, rows))
            )
        )

    def renamed(self, name: str) -> Column:
        """The same values under another name."""
        return Column(_b.types.Column(name=name, data=self._wit.data, valid=self._wit.valid))

    def __repr__(self) -> str:
        return f"Column({self.name!r}, {self.type}, {len(self)} values)"


class FileItem:
    """One input file of a file mini-batch: its path relative to the input
    folder and its whole contents."""

    __slots__ = ("name", "data")

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def text(self, encoding: str = "utf-8") -> str:
        """The contents decoded, or a `ValueError` naming the file."""
        try:
            return self.data.decode(encoding)
        except UnicodeDecodeError as e:
            raise ValueError(f"{self.name} is not {encoding} text: {e}") from None

    def __repr__(self) -> str:
        return f"FileItem({self.name!r}, {len(self.data)} bytes)"


class Rows:
    """The rows of a tabular mini-batch: the delivered columns (see
    `host_batch.deliver_columns`) and, per row, its source file and row
    number. Row `i` is input item `i`."""

    __slots__ = ("_wit", "_columns")

    def __init__(self, wit: Any) -> None:
        self._wit = wit
        self._columns: dict[str, Column] | None = None

    @property
    def num_rows(self) -> int:
        return self._wit.rows.num_rows  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return self._wit.rows.num_rows  # type: ignore[no-any-return]

    def _by_name(self) -> dict[str, Column]:
        if self._columns is None:
            self._columns = {c.name: Column(c) for c in self._wit.rows.columns}
        return self._columns

    @property
    def columns(self) -> list[Column]:
        """The delivered columns, in input order."""
        return list(self._by_name().values())

    @property
    def names(self) -> list[str]:
        return list(self._by_name())

    def column(self, name: str) -> Column | None:
        """The delivered column `name`, or `None`."""
        return self._by_name().get(name)

    def __getitem__(self, name: str) -> Column:
        try:
            return self._by_name()[name]
        except KeyError:
            have = ", ".join(self._by_name()) or "none"
            raise KeyError(f"no delivered column `{name}` (delivered: {have})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name()

    @property
    def sources(self) -> list[str]:
        """The source files of this mini-batch's rows."""
        return self._wit.sources  # type: ignore[no-any-return]

    def _origins(self, what: str) -> Any:
        if self._wit.rows.num_rows and not self._wit.row_source:
            raise RuntimeError(
                f"Rows.{what}: this scorer called host_batch.deliver_row_origins(False), so rows arrive without "
                "their source file and row number; add them to the result with "
                "host_batch.add_result_column(NAME, 'source_file' or 'row_number')"
            )
        return self._wit

    @property
    def row_numbers(self) -> list[int]:
        """Each row's number in its source file (0-based, header excluded)."""
        return self._origins("row_numbers").row_number  # type: ignore[no-any-return]

    def source_of(self, row: int) -> str:
        """The source file of row `row`."""
        w = self._origins("source_of()")
        return w.sources[w.row_source[row]]  # type: ignore[no-any-return]

    def row_number(self, row: int) -> int:
        return self._origins("row_number()").row_number[row]  # type: ignore[no-any-return]

    def source_column(self, name: str, rows: Sequence[int] | None = None) -> Column:
        """A text column holding the source file of each of `rows` (default:
        every row)."""
        sources = self._wit.sources
        which = self._origins("source_column()").row_source
        if rows is None:
            # Rows come in runs from one file: one list repetition per run.
            values: list[str] = []
            for s, run in itertools.groupby(which):
                values += [sources[s]] * len(list(run))
        else:
            values = list(map(sources.__getitem__, map(which.__getitem__, rows)))
        return Column(_b.types.Column(name=name, data=_b.types.ColumnData_String(values), valid=None))

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per row of the delivered columns (`None` for nulls). A
        loop in Python over every cell: for features, prefer ONNX column
        sources, which never copy them into the guest."""
        cols = [(c.name, c.to_list()) for c in self._by_name().values()]
        return [{name: values[i] for name, values in cols} for i in range(self.num_rows)]

    def __repr__(self) -> str:
        return f"Rows({self.num_rows} rows, columns {self.names})"


class MiniBatch:
    """One mini-batch: `files` (file input) or `rows` (tabular input).
    Item `i` is `files[i]` or row `i`; results refer to items by index."""

    __slots__ = ("id", "files", "rows")

    def __init__(self, id: str, files: list[FileItem] | None = None, rows: Rows | None = None) -> None:
        #: Stable id of the mini-batch within its job (for logs and replay).
        self.id = id
        #: The files of a file mini-batch (empty for tabular input).
        self.files: list[FileItem] = files or []
        #: The rows of a tabular mini-batch (`None` for file input).
        self.rows: Rows | None = rows

    @classmethod
    def _from_wit(cls, wit: Any) -> MiniBatch:
        items = wit.items
        if isinstance(items, _b.types.Items_Rows):
            return cls(wit.id, rows=Rows(items.value))
        return cls(wit.id, files=[FileItem(f.name, f.data) for f in items.value])

    def require_rows(self) -> Rows:
        """The rows, or a `UserError` saying the scorer needs tabular input."""
        if self.rows is None:
            raise UserError("this scorer needs tabular input (an input of type: mltable)")
        return self.rows

    def __len__(self) -> int:
        return self.rows.num_rows if self.rows is not None else len(self.files)

    def __iter__(self) -> Iterator[Any]:
        """The files, or for tabular input one dict per row (`Rows.to_dicts`)."""
        if self.rows is not None:
            return iter(self.rows.to_dicts())
        return iter(self.files)

    def __repr__(self) -> str:
        what = repr(self.rows) if self.rows is not None else f"{len(self.files)} files"
        return f"MiniBatch({self.id!r}, {what})"


ColumnLike = Union[Column, Sequence[Any]]


def _as_column(name: str, col: Any) -> Column:
    if isinstance(col, Column):
        return col if col.name == name else col.renamed(name)
    if isinstance(col, (str, bytes)) or not isinstance(col, Sequence):
        raise TypeError(f"column `{name}`: a {type(col).__name__}; give a list of values or a sluice_sdk.Column")
    return Column.of(name, col)


class BatchResult:
    """What `run` returns: output rows, each tied to its input item
    (`row_items`), and item errors. Every item needs rows or one error."""

    __slots__ = ("row_items", "columns", "errors")

    def __init__(self, row_items: list[int] | range, columns: list[Column], errors: list[ItemError]) -> None:
        self.row_items = row_items
        self.columns = columns
        self.errors = errors

    @classmethod
    def from_columns(
        cls,
        row_items: Iterable[int],
        columns: Iterable[Column] | Mapping[str, ColumnLike],
        errors: Iterable[ItemError | tuple[int, str]] = (),
    ) -> BatchResult:
        """A result built column by column: `columns` (Column objects, or a
        dict of name -> Column or list of values) hold one value per entry
        of `row_items`, the input item of each output row. Pass
        `range(len(mini_batch))` when every item has one row, in order: the
        indexes then need not cross to the host (sluice 0.1.3)."""
        items = row_items if isinstance(row_items, range) else list(row_items)
        if isinstance(columns, Mapping):
            cols = [_as_column(str(k), v) for k, v in columns.items()]
        else:
            cols = []
            for c in columns:
                if not isinstance(c, Column):
                    raise TypeError(f"columns: a {type(c).__name__}; give sluice_sdk.Column objects or a dict")
                cols.append(c)
        for c in cols:
            if len(c) != len(items):
                raise ValueError(f"column `{c.name}` has {len(c)} values for {len(items)} output rows")
        errs = []
        for e in errors:
            if isinstance(e, ItemError):
                if e.item is None:
                    raise ValueError(f"ItemError({e.message!r}) needs item=INDEX here")
                errs.append(e)
            else:
                item, message = e
                errs.append(ItemError(message, item=item))
        return cls(items, cols, errs)

    def _to_wit(self) -> Any:
        t = _b.types
        ri = self.row_items
        # One row per item, in order, no errors: the host reads an empty
        # `row-items` as 0..n (sluice 0.1.3), saving a value per row.
        identity = isinstance(ri, range) and ri.start == 0 and ri.step == 1 and not self.errors
        return t.BatchResult(
            rows=t.Table(num_rows=len(ri), columns=[c._wit for c in self.columns]),
            row_items=[] if identity else list(ri),
            errors=[t.ItemError(item=e.item, message=e.message) for e in self.errors],
        )

    def __repr__(self) -> str:
        return f"BatchResult({len(self.row_items)} rows, columns {[c.name for c in self.columns]}, {len(self.errors)} errors)"


class _Buf:
    __slots__ = ("kind", "values", "valid", "has_null")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.values: list[Any] = []
        self.valid: list[bool] = []
        self.has_null = False

    def pad(self, rows: int) -> None:
        while len(self.valid) < rows:
            self.has_null = True
            self.valid.append(False)
            self.values.append(_PLACEHOLDER[self.kind])


class ResultBuilder:
    """Collects output rows, each for an input item, and item errors, row by
    row; columns are created on first use with the type of their first
    value, and a row that does not set a column gets a null there.

        out = ResultBuilder()
        out.row(0).string("name", "a.txt").s64("bytes", 12)
        out.row(1, name="b.txt", bytes=7)     # types inferred
        out.error(2, "not UTF-8")
        return out.finish()
    """

    def __init__(self) -> None:
        self._columns: dict[str, _Buf] = {}
        self._row_items: list[int] = []
        self._errors: list[ItemError] = []

    def row(self, item: int, values: Mapping[str, Any] | None = None, **kw: Any) -> RowWriter:
        """Starts an output row for input item `item`, optionally setting
        cells from `values` / keywords (types inferred; `None` is null)."""
        self._row_items.append(int(item))
        w = RowWriter(self)
        for source in (values or {}, kw):
            for name, v in source.items():
                if v is not None:
                    w.set(name, v)
        return w

    def error(self, item: int, message: object) -> ResultBuilder:
        """Marks input item `item` failed (an item error)."""
        self._errors.append(ItemError(str(message), item=int(item)))
        return self

    def finish(self) -> BatchResult:
        rows = len(self._row_items)
        cols = []
        for name, b in self._columns.items():
            b.pad(rows)
            cols.append(
                Column(
                    _b.types.Column(
                        name=name, data=_column_data(b.kind, b.values), valid=b.valid if b.has_null else None
                    )
                )
            )
        return BatchResult(self._row_items, cols, self._errors)

    def _cell(self, name: str, kind: str, value: Any) -> None:
        row = len(self._row_items) - 1
        b = self._columns.get(name)
        if b is None:
            b = self._columns[name] = _Buf(kind)
        elif b.kind != kind:
            if b.kind == "f64" and kind == "s64":
                value = float(value)
            else:
                raise TypeError(f"column `{name}` already holds {b.kind} values, not {kind}")
        b.pad(row)
        if len(b.valid) != row:
            raise ValueError(f"column `{name}` set twice in one row")
        b.values.append(value)
        b.valid.append(True)


class RowWriter:
    """Sets the cells of one output row; each setter returns the writer."""

    __slots__ = ("_b",)

    def __init__(self, b: ResultBuilder) -> None:
        self._b = b

    def set(self, name: str, value: Any) -> RowWriter:
        """A cell with its type inferred (bool, int -> s64, float -> f64, str)."""
        self._b._cell(name, _infer(name, [value]), value)
        return self

    def f32(self, name: str, value: float) -> RowWriter:
        self._b._cell(name, "f32", float(value))
        return self

    def f64(self, name: str, value: float) -> RowWriter:
        self._b._cell(name, "f64", float(value))
        return self

    def s64(self, name: str, value: int) -> RowWriter:
        self._b._cell(name, "s64", int(value))
        return self

    def bool(self, name: str, value: bool) -> RowWriter:
        self._b._cell(name, "bool", bool(value))
        return self

    def string(self, name: str, value: str) -> RowWriter:
        self._b._cell(name, "string", str(value))
        return self


def to_result(out: Any, n_items: int, what: str = "run()") -> BatchResult:
    """Turns what `run` returned into a `BatchResult`:

    - a `BatchResult` or a `ResultBuilder`;
    - a list with one element per input item, in order: a dict (that item's
      output row), or an `ItemError` / exception instance (that item failed);
    - a column table: a dict of column name -> `Column` or list of values,
      one value per input item.
    """
    if isinstance(out, BatchResult):
        return out
    if isinstance(out, ResultBuilder):
        return out.finish()
    if isinstance(out, Mapping):
        cols = [_as_column(str(k), v) for k, v in out.items()]
        for c in cols:
            if len(c) != n_items:
                raise ValueError(
                    f"{what} returned a column table whose column `{c.name}` has {len(c)} values for {n_items} "
                    "items; a table has one row per item (use BatchResult.from_columns to map rows to items)"
                )
        return BatchResult(range(n_items), cols, [])
    if isinstance(out, (list, tuple)):
        if len(out) != n_items:
            raise ValueError(
                f"{what} returned {len(out)} rows for {n_items} items; return one dict per item, in order "
                "(an ItemError where an item failed), or use ResultBuilder / BatchResult.from_columns"
            )
        row_items: list[int] = []
        errors: list[ItemError] = []
        names: dict[str, None] = {}
        rows: list[Mapping[str, Any]] = []
        for i, r in enumerate(out):
            if isinstance(r, Mapping):
                row_items.append(i)
                rows.append(r)
                for k in r:
                    names[k] = None
            elif isinstance(r, ItemError):
                errors.append(ItemError(r.message, item=i))
            elif isinstance(r, BaseException):
                errors.append(ItemError(f"{type(r).__name__}: {r}" if str(r) else type(r).__name__, item=i))
            else:
                raise TypeError(
                    f"{what} returned a list whose element {i} is of type {type(r).__name__}: each element must be a "
                    "dict (the item's output row) or an ItemError / exception (the item failed)"
                )
        cols = [Column.of(str(n), [r.get(n) for r in rows]) for n in names]
        return BatchResult(row_items if errors else range(len(row_items)), cols, errors)
    if out is None:
        if n_items == 0:
            return BatchResult([], [], [])
        raise TypeError(
            f"{what} returned None for {n_items} items: return rows (a list of dicts, one per item), a column "
            "table (a dict of name -> column), or a ResultBuilder / BatchResult"
        )
    raise TypeError(
        f"{what} returned an object of type {type(out).__name__}: return rows (a list of dicts, one per item), "
        "a column table (a dict of name -> column), or a ResultBuilder / BatchResult"
    )
