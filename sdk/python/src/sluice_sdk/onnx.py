"""Native ONNX inference from a scorer, run by the host.

Load a granted model by name, feed its inputs from columns of the current
mini-batch (the host stacks them into the tensor: the features never pass
through Python) and turn its outputs into result columns in the host:

    model = Model.load("model")
    scored = (model.request()
              .columns("input", features, rows=good)     # host column source
              .to_column("label", "prediction")          # output -> column
              .to_column("probabilities", "probability", "max")
              .run())
    scored.columns  # [Column prediction, Column probability]

This is the fast path in Python: building a tensor in Python instead
(`Tensor.f32(shape, values)`) loops over every value and is several times
slower.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Union

from . import _bindings as _b
from . import _export
from ._data import Column, Rows

#: How an output of shape `[rows]` or `[rows, k]` becomes one column:
#: "whole" (as it is), "max" (the largest element of each row), "argmax"
#: (its position, as s64), or an int `k` (element k of each row).
Select = Union[str, int]

_CODES = {
    "UNKNOWN_MODEL": "unknown-model",
    "UNKNOWN_NAME": "unknown-name",
    "SHAPE_MISMATCH": "shape-mismatch",
    "TYPE_MISMATCH": "type-mismatch",
    "TOO_LARGE": "too-large",
    "INVALID_INPUT": "invalid-input",
    "RUNTIME_FAILURE": "runtime-failure",
}


class OnnxError(Exception):
    """A failed model load or run: `code` as the WIT spells it
    (`unknown-model`, `unknown-name`, `shape-mismatch`, `type-mismatch`,
    `too-large`, `invalid-input`, `runtime-failure`) and the host's message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def _from_wit(cls, e: Any) -> OnnxError:
        return cls(_CODES.get(e.code.name, e.code.name.lower()), e.message)


def _element_type(e: Any) -> str:
    return str(e.name).lower()


class TensorInfo:
    """A model input or output: name, element type (`f32`, `f64`, `s64`,
    `s32`, `u8`, `bool`, `string`, `other`) and shape (-1: fixed at run time)."""

    __slots__ = ("name", "element_type", "shape")

    def __init__(self, name: str, element_type: str, shape: list[int]) -> None:
        self.name = name
        self.element_type = element_type
        self.shape = shape

    def width(self) -> int | None:
        """The fixed size of the last dimension (features per row of a
        `[-1, k]` input), if it has one."""
        if len(self.shape) == 2 and self.shape[1] > 0:
            return self.shape[1]
        if len(self.shape) == 1:
            return 1
        return None

    def __repr__(self) -> str:
        return f"TensorInfo({self.name!r}, {self.element_type}, {self.shape})"


class ModelInfo:
    __slots__ = ("name", "inputs", "outputs")

    def __init__(self, name: str, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
        self.name = name
        self.inputs = inputs
        self.outputs = outputs

    @classmethod
    def _from_wit(cls, w: Any) -> ModelInfo:
        def conv(t: Any) -> TensorInfo:
            return TensorInfo(t.name, _element_type(t.element_type), list(t.shape))

        return cls(w.name, [conv(t) for t in w.inputs], [conv(t) for t in w.outputs])

    def input(self, name: str) -> TensorInfo | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorInfo | None:
        return next((t for t in self.outputs if t.name == name), None)

    def __repr__(self) -> str:
        return f"ModelInfo({self.name!r}, inputs={self.inputs}, outputs={self.outputs})"


class Tensor:
    """A tensor the scorer computed or fetched: shape and row-major values."""

    __slots__ = ("shape", "element_type", "data")

    def __init__(self, shape: Sequence[int], element_type: str, data: list[Any]) -> None:
        self.shape = list(shape)
        self.element_type = element_type
        self.data = data

    @classmethod
    def f32(cls, shape: Sequence[int], data: Sequence[float]) -> Tensor:
        return cls(shape, "f32", list(data))

    @classmethod
    def f64(cls, shape: Sequence[int], data: Sequence[float]) -> Tensor:
        return cls(shape, "f64", list(data))

    @classmethod
    def s64(cls, shape: Sequence[int], data: Sequence[int]) -> Tensor:
        return cls(shape, "s64", list(data))

    @classmethod
    def _from_wit(cls, t: Any) -> Tensor:
        return cls(list(t.shape), type(t.data).__name__.rpartition("_")[2].lower(), t.data.value)

    def _to_wit(self) -> Any:
        o = _b.onnx
        kinds = {
            "f32": o.TensorData_F32,
            "f64": o.TensorData_F64,
            "s64": o.TensorData_S64,
            "s32": o.TensorData_S32,
            "u8": o.TensorData_U8,
        }
        if self.element_type not in kinds:
            raise ValueError(f"a tensor of {self.element_type} cannot cross to the host (f32, f64, s64, s32, u8)")
        data = self.data
        if self.element_type == "u8" and not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        return o.Tensor(shape=self.shape, data=kinds[self.element_type](data))

    def __repr__(self) -> str:
        return f"Tensor({self.element_type}, shape {self.shape})"


class RunResult:
    """`columns`: one per `to_column`, in that order; `tensors`: the fetched
    outputs by name, in `fetch` order."""

    __slots__ = ("columns", "tensors")

    def __init__(self, columns: list[Column], tensors: dict[str, Tensor]) -> None:
        self.columns = columns
        self.tensors = tensors

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no result column `{name}` (have {', '.join(c.name for c in self.columns) or 'none'})")


def _select(select: Select) -> Any:
    o = _b.onnx
    if isinstance(select, bool):
        raise TypeError("select: give 'whole', 'max', 'argmax' or an int index")
    if isinstance(select, int):
        if select < 0:
            raise ValueError(f"select index {select}: must be >= 0")
        return o.OutputSelect_Index(select)
    if select == "whole":
        return o.OutputSelect_Whole()
    if select == "max":
        return o.OutputSelect_Max()
    if select == "argmax":
        return o.OutputSelect_Argmax()
    raise ValueError(f"select {select!r}: give 'whole', 'max', 'argmax' or an int index")


def _names(names: Sequence[str] | str) -> list[str]:
    return [names] if isinstance(names, str) else [str(n) for n in names]


class Request:
    """A model run being put together; every method returns the request."""

    __slots__ = ("_model", "_inputs", "_fetch", "_to_columns")

    def __init__(self, model: Model) -> None:
        self._model = model
        self._inputs: list[Any] = []
        self._fetch: list[str] = []
        self._to_columns: list[Any] = []

    def columns(self, input: str, columns: Sequence[str] | str, rows: Sequence[int] | None = None) -> Request:
        """Feeds input `input` from columns of the current mini-batch, stacked
        by the host into `[rows, columns]` (every row when `rows` is None).
        The columns need not be delivered to the guest."""
        o = _b.onnx
        src = o.ColumnSource(columns=_names(columns), rows=None if rows is None else list(rows))
        self._inputs.append(o.Input(name=input, source=o.TensorSource_Columns(src)))
        return self

    def tensor(self, input: str, tensor: Tensor) -> Request:
        """Feeds input `input` with a tensor the scorer computed."""
        o = _b.onnx
        self._inputs.append(o.Input(name=input, source=o.TensorSource_Data(tensor._to_wit())))
        return self

    def fetch(self, output: str) -> Request:
        """Returns output `output` as a tensor (`RunResult.tensors`)."""
        self._fetch.append(output)
        return self

    def to_column(self, output: str, column: str, select: Select = "whole") -> Request:
        """Turns output `output` into result column `column` in the host."""
        self._to_columns.append(_b.onnx.OutputColumn(output=output, column=column, select=_select(select)))
        return self

    def run(self) -> RunResult:
        """Runs the model; an `OnnxError` on failure."""
        _export.require_started("Model.run()")
        req = _b.onnx.RunRequest(inputs=self._inputs, fetch=self._fetch, to_columns=self._to_columns)
        try:
            r = self._model._wit.run(req)
        except _b.Err as e:
            raise OnnxError._from_wit(e.value) from None
        return RunResult([Column(c) for c in r.columns], {t.name: Tensor._from_wit(t.tensor) for t in r.tensors})

    def run_into_result(self) -> int:
        """Runs the model with the `to_column` outputs added by the host to
        this `run`'s result (after the returned columns, in call order with
        `host_batch.add_result_column`) instead of coming back into Python:
        their values never cross. Returns their number of rows. Takes no
        `fetch`. An `OnnxError` on failure, and then nothing is added.
        (sluice 0.1.3)"""
        _export.require_started("Model.run_into_result()")
        req = _b.onnx.RunRequest(inputs=self._inputs, fetch=self._fetch, to_columns=self._to_columns)
        try:
            return int(self._model._wit.run_into_result(req))
        except _b.Err as e:
            raise OnnxError._from_wit(e.value) from None


def f32_tensor(rows: Rows, columns: Sequence[str], row_indexes: Sequence[int] | None = None) -> Tensor:
    """Stacks delivered numeric columns of `rows` into a row-major
    `[rows, columns]` f32 tensor in the guest, for features the scorer
    transforms first (prefer `Request.columns` when they go in as they
    are: the host stacks them without copying them into Python). A null
    cell is a `ValueError` naming the column and row."""
    picked = []
    for name in _names(columns):
        col = rows[name]
        if col.type == "string":
            raise ValueError(f"column `{name}` holds text, not numbers")
        values = col.values if row_indexes is None else list(map(col.values.__getitem__, row_indexes))
        valid = col.valid
        if valid is not None:
            flags = valid if row_indexes is None else list(map(valid.__getitem__, row_indexes))
            if not all(flags):
                r = flags.index(False)
                raise ValueError(f"column `{name}` is null at row {r if row_indexes is None else row_indexes[r]}")
        picked.append(values if col.type in ("f32", "f64") else list(map(float, values)))
    n = len(rows) if row_indexes is None else len(row_indexes)
    # zip + chain flatten row by row in C, not in a Python loop.
    return Tensor.f32([n, len(picked)], list(itertools.chain.from_iterable(zip(*picked))))


class Model:
    """A model the job grants (an input of type `mlflow_model` or
    `custom_model`), opened by its input name. Sessions live in the host."""

    __slots__ = ("_wit", "_info")

    def __init__(self, wit: Any, info: ModelInfo) -> None:
        self._wit = wit
        self._info = info

    @classmethod
    def load(cls, name: str) -> Model:
        """Opens the model granted as `inputs.NAME`; `OnnxError`
        (`unknown-model`) when the job grants none of that name."""
        _export.require_started("Model.load()")
        try:
            wit = _b.onnx.load(name)
        except _b.Err as e:
            raise OnnxError._from_wit(e.value) from None
        return cls(wit, ModelInfo._from_wit(wit.info()))

    @staticmethod
    def granted() -> list[str]:
        """The names of every model the job grants."""
        _export.require_started("Model.granted()")
        return list(_b.onnx.granted())

    def info(self) -> ModelInfo:
        return self._info

    def request(self) -> Request:
        return Request(self)

    def __repr__(self) -> str:
        return f"Model({self._info.name!r})"
