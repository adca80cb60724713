"""The WIT bindings componentize-py generates (`wit_world`), imported once.

Inside a component they are always there. On the host (the build command,
the unit tests) they are not, unless a test puts generated bindings on
`sys.path`; then every use says where the runtime parts work.
"""

from __future__ import annotations

from typing import Any


class _Missing:
    """Stands in for a bindings module outside a component."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise RuntimeError(
            f"sluice_sdk: `{self._name}.{attr}` exists only inside a scorer component; "
            "build the scorer with `python -m sluice_sdk build score.py -o scorer.wasm` and run it with sluice"
        )


try:
    from componentize_py_types import Err  # type: ignore[import-not-found]
    from wit_world.imports import batch, log, onnx, types  # type: ignore[import-not-found]

    AVAILABLE = True
except ImportError:  # on the host
    AVAILABLE = False
    types = _Missing("types")  # type: ignore[assignment]
    onnx = _Missing("onnx")  # type: ignore[assignment]
    batch = _Missing("batch")  # type: ignore[assignment]
    log = _Missing("log")  # type: ignore[assignment]

    class Err(Exception):  # type: ignore[no-redef]
        """Never raised on the host; keeps `except Err` valid there."""

        value: Any
