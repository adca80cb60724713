"""sluice_sdk: write a sluice batch scorer in Python.

Two forms; either builds with `python -m sluice_sdk build score.py -o scorer.wasm`.

A class, one object per sandboxed instance:

    import sluice_sdk as sluice

    class Sizes(sluice.Scorer):
        def init(self, config):
            self.unit = config.get("unit", "bytes")      # kept for every run()

        def run(self, mini_batch):
            return [{"name": f.name, "size": len(f.data)} for f in mini_batch.files]

    sluice.export(Sizes)

or an Azure ML style module with `init()` and `run(mini_batch)` (no class,
no `export`). `run` returns rows (a list of dicts, one per input item, an
`ItemError` where an item failed), a column table (a dict of column name
-> `Column` or list), or a `ResultBuilder` / `BatchResult`.

An exception from `init` or `run` fails the instance start or the
mini-batch as `USER_ERROR` with its type, text and the file:line of your
code; `UserError("...")` gives just its message. The host does the heavy
work: ONNX models (`Model`) fed from the mini-batch's columns in the host
(`host_batch`), so features never pass through Python.
"""

from __future__ import annotations

from typing import Any, TypeVar

from . import _export, host_batch, onnx
from ._data import (
    BatchResult,
    Column,
    Config,
    FileItem,
    ItemError,
    MiniBatch,
    ResultBuilder,
    RowWriter,
    Rows,
    UserError,
)
from ._log import Level, LogHandler, debug, error, info, log, trace, warn, warning
from .onnx import Model, ModelInfo, OnnxError, RunResult, Tensor, TensorInfo

__version__ = "0.1.3"

#: The WIT package this SDK is built against (bundled in `sluice_sdk/wit`).
WIT_PACKAGE = "sluice:scorer@0.1.3"

S = TypeVar("S", bound=type)


class Scorer:
    """Base class of a scorer. One object lives per sandboxed instance:
    `init` runs once on it, then `run` once per mini-batch, so whatever
    `init` sets on `self` is there in every `run`."""

    def init(self, config: Config) -> None:
        """Reads the job's configuration; raise to fail the instance start."""

    def run(self, mini_batch: MiniBatch) -> Any:
        """Scores one mini-batch: rows (a list of dicts, one per item), a
        column table (dict of name -> Column or list), a `ResultBuilder` or
        a `BatchResult`. Raise only when the whole mini-batch cannot be
        scored; report a bad item with an `ItemError`."""
        raise NotImplementedError(f"{type(self).__name__}.run(self, mini_batch) is not defined")


def export(cls: S) -> S:
    """Makes `cls` (a `Scorer` subclass) the component's scorer; usable as
    a call (`sluice_sdk.export(MyScorer)`) or a class decorator."""
    _export.register(cls)
    return cls


def config() -> Config:
    """The job's configuration, once `init` has been called (handy in the
    Azure form, whose `init()` takes no argument)."""
    return _export.current_config()


__all__ = [
    "BatchResult",
    "Column",
    "Config",
    "FileItem",
    "ItemError",
    "Level",
    "LogHandler",
    "MiniBatch",
    "Model",
    "ModelInfo",
    "OnnxError",
    "ResultBuilder",
    "RowWriter",
    "Rows",
    "RunResult",
    "Scorer",
    "Tensor",
    "TensorInfo",
    "UserError",
    "config",
    "debug",
    "error",
    "export",
    "host_batch",
    "info",
    "log",
    "onnx",
    "trace",
    "warn",
    "warning",
]
