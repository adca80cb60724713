"""The current tabular mini-batch as the host holds it.

Columns stay in the host unless delivered: call `deliver_columns` in
`init` with what `run` reads in Python (an id, say), and feed the rest to
ONNX as column sources (`Request.columns`), which never copies them into
the guest. Each delivered value costs Python time; an undelivered one
costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import _bindings as _b
from . import _export
from .onnx import OnnxError, _names


def deliver_columns(names: Sequence[str] | str) -> None:
    """Call in `init`: `run` then receives only these columns of tabular
    mini-batches (names not in a mini-batch are skipped). Not calling it
    delivers every column."""
    _export.require_started("host_batch.deliver_columns()")
    _b.batch.deliver_columns(_names(names))


def deliver_row_origins(deliver: bool) -> None:
    """Call in `init` with `False`: tabular mini-batches then arrive without
    each row's source file and row number (two values per row Python would
    otherwise build); `add_result_column(NAME, "source_file")` or
    `"row_number"` still puts them in a result, and `Rows.source_of()` and
    the like raise. (sluice 0.1.3)"""
    _export.require_started("host_batch.deliver_row_origins()")
    _b.batch.deliver_row_origins(bool(deliver))


def columns() -> list[tuple[str, str]]:
    """`(name, type)` of every column of the current mini-batch, delivered
    or not (`f32`, `f64`, `s64`, `string`, `bool`)."""
    _export.require_started("host_batch.columns()")
    return [(n, t) for n, t in _b.batch.columns()]


def null_rows(names: Sequence[str] | str) -> list[int]:
    """Indexes of the rows where any of `names` is null, ascending;
    `OnnxError` (`unknown-name`) for a column not in the mini-batch."""
    _export.require_started("host_batch.null_rows()")
    try:
        return list(_b.batch.null_rows(_names(names)))
    except _b.Err as e:
        raise OnnxError._from_wit(e.value) from None


def _result_source(source: str | dict[str, str]) -> object:
    if source in ("source_file", "source-file"):
        return _b.batch.ResultSource_SourceFile()
    if source in ("row_number", "row-number"):
        return _b.batch.ResultSource_RowNumber()
    if isinstance(source, dict) and isinstance(source.get("column"), str):
        return _b.batch.ResultSource_Column(source["column"])
    raise TypeError(
        "host_batch.add_result_column(): the source must be 'source_file', 'row_number' or "
        f"{{'column': NAME}}, not {source!r}"
    )


def add_result_column(name: str, source: str | dict[str, str], rows: Sequence[int] | None = None) -> None:
    """Has the host add a column `name` to this `run`'s result, after the
    columns `run` returns (in call order), built from the mini-batch it
    holds, so its values never cross into Python: `source` is
    `"source_file"` (each row's file), `"row_number"` (its row in the file)
    or `{"column": NAME}` (a column of the mini-batch, delivered or not);
    `rows` picks mini-batch rows, one result row each (`None`: every row).
    The fast way to return provenance or pass a column through. `OnnxError`
    for an unknown column, a row out of range, a name added twice, more
    than 64 added columns. (sluice 0.1.2)"""
    _export.require_started("host_batch.add_result_column()")
    wit_source = _result_source(source)
    pick = None if rows is None else [int(r) for r in rows]
    try:
        _b.batch.add_result_column(str(name), wit_source, pick)
    except _b.Err as e:
        raise OnnxError._from_wit(e.value) from None
