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
