"""The component's `init` and `run` exports, which the build command's glue
hands to componentize-py as its `WitWorld`.

- **One scorer per instance.** componentize-py makes a new `WitWorld`
  object for each exported call, so nothing may live on it: the scorer
  object (class form) or the user's module (Azure form) is held here, at
  module level, which is per instance.
- **No trap for an exception.** Every exception from `init` or `run` is
  caught and returned as the WIT `error` (reason code `USER_ERROR`),
  its message `Type: text at file.py:LINE in func()`, naming the last
  frame of the user's code; the whole traceback goes to the job's log.
  A `UserError` gives its message alone.
- **Host calls only from init/run.** componentize-py runs the module's
  top level while building, where every host import is a trapping stub;
  the SDK's wrappers check `started()` and say so in words instead.
"""

from __future__ import annotations

import inspect
import os
import traceback
from types import ModuleType
from typing import Any

from . import _bindings as _b
from ._data import Config, MiniBatch, UserError, to_result

IMPORT_TIME = (
    "host imports (onnx, batch, log) can only be called from init/run, not at import time "
    "(module top level runs while the scorer is built); move this call into init()"
)

_started = False
_registered: type | None = None
_scorer: Any = None
_module: ModuleType | None = None
_config: Config | None = None
#: Path prefixes of the user's code inside the component ("/0/" for the
#: first `-p` folder) and how to show them ("" : relative to the app).
_user_prefixes: tuple[str, ...] = ()
_sdk_dir = os.path.dirname(os.path.abspath(__file__))
_stdlib_dir = os.path.dirname(os.path.abspath(os.__file__))


class HostCallAtImportTime(RuntimeError):
    """A host import used from the module's top level (build time)."""


def started() -> bool:
    """Whether `init` has begun in this instance (host imports work)."""
    return _started


def require_started(what: str) -> None:
    if not _started:
        raise HostCallAtImportTime(f"{what}: {IMPORT_TIME}")


def configure(user_prefixes: tuple[str, ...]) -> None:
    """Called by the generated glue before it imports the user's module."""
    global _user_prefixes
    _user_prefixes = tuple(user_prefixes)


def register(cls: type) -> None:
    global _registered
    if not isinstance(cls, type):
        raise TypeError(f"sluice_sdk.export() takes a class (a Scorer subclass), not a {type(cls).__name__}")
    if not callable(getattr(cls, "run", None)):
        raise TypeError(f"sluice_sdk.export({cls.__name__}): the class has no run(self, mini_batch) method")
    if _registered is not None and _registered is not cls:
        raise TypeError(
            f"sluice_sdk.export() called twice ({_registered.__name__}, then {cls.__name__}): "
            "a component has one scorer"
        )
    _registered = cls


def current_config() -> Config:
    if _config is None:
        require_started("sluice_sdk.config()")
        raise UserError("sluice_sdk.config() is available once init() has been called")
    return _config


# --- describing an exception -------------------------------------------------


def _display(filename: str) -> str:
    for p in _user_prefixes:
        if filename.startswith(p):
            return filename[len(p) :]
    return filename


def _is_user(filename: str) -> bool:
    if _user_prefixes:
        return filename.startswith(_user_prefixes)
    f = os.path.abspath(filename)
    return not (f.startswith(_sdk_dir) or f.startswith(_stdlib_dir) or "wit_world" in f)


def describe(e: BaseException) -> str:
    """The one-line message of an exception escaping `init` or `run`."""
    if isinstance(e, UserError):
        return str(e) or "UserError"
    if isinstance(e, SystemExit):
        text = f"the scorer called sys.exit({e.code!r}); return from init/run or raise an exception instead"
    else:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    frames = traceback.extract_tb(e.__traceback__)
    user = [f for f in frames if _is_user(f.filename)]
    # No frame of the user's: raised by the SDK about what run() returned
    # (its message says what), so no place to name.
    at = user[-1] if user else None
    if at is not None:
        text += f" at {_display(at.filename)}:{at.lineno} in {at.name}()"
    return text


def _log_traceback(e: BaseException, phase: str) -> None:
    if isinstance(e, UserError):
        return
    # One log line each (the host escapes newlines): the exception, then
    # the frames outside the SDK, innermost last, as Python prints them.
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith(_sdk_prefixes())]
    lines = [f"{phase}() raised {traceback.format_exception_only(type(e), e)[-1].strip()}"]
    lines += [f"  at {_display(f.filename)}:{f.lineno} in {f.name}()" for f in frames]
    try:
        for line in lines:
            _b.log.log(_b.log.Level.ERROR, line)
    except Exception:  # the log must never hide the error itself
        pass


def _sdk_prefixes() -> tuple[str, ...]:
    return (_sdk_dir + os.sep, _sdk_dir + "/")


def _fail(e: BaseException, phase: str) -> Any:
    _log_traceback(e, phase)
    return _b.Err(_b.types.Error(message=describe(e)))


def _returned_error(value: Any, phase: str) -> None:
    # `return UserError(...)` (or any exception) from init/run is a bug
    # that would otherwise pass silently: treat it as raised.
    if isinstance(value, BaseException):
        raise value


# --- the exports ------------------------------------------------------------


def _call_init(fn: Any, config: Config) -> Any:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(config)
    takes = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return fn(config) if takes or any(p.kind == p.VAR_POSITIONAL for p in params.values()) else fn()


def init(wit_config: Any) -> None:
    global _started, _scorer, _config
    _started = True
    try:
        _config = Config._from_wit(wit_config)
        if _registered is not None:
            scorer = _registered()
            _returned_error(_call_init(scorer.init, _config), "init")
            _scorer = scorer
        elif _module is not None:
            fn = getattr(_module, "init", None)
            if fn is not None:
                _returned_error(_call_init(fn, _config), "init")
            _scorer = _module
        else:
            raise UserError("the component was built without a scorer (no export() and no run())")
    except BaseException as e:
        raise _fail(e, "init") from None


def run(wit_batch: Any) -> Any:
    try:
        if _scorer is None:
            raise UserError("run() called before a successful init()")
        batch = MiniBatch._from_wit(wit_batch)
        out = _scorer.run(batch)
        _returned_error(out, "run")
        return to_result(out, len(batch))._to_wit()
    except BaseException as e:
        raise _fail(e, "run") from None


class WitWorld:
    """What componentize-py instantiates for each exported call: no state
    here, on purpose."""

    def init(self, config: Any) -> None:
        init(config)

    def run(self, batch: Any) -> Any:
        return run(batch)


def world(module: ModuleType) -> type:
    """The `WitWorld` for the user's module, after it was imported: its
    exported `Scorer` class, else its module-level `init()` / `run()`."""
    global _module
    if _registered is None:
        run_fn = getattr(module, "run", None)
        if not callable(run_fn):
            raise TypeError(
                f"{_display(getattr(module, '__file__', module.__name__))} defines no scorer: call "
                "sluice_sdk.export(MyScorer) with a Scorer subclass, or define module-level "
                "init() and run(mini_batch) as in an Azure ML score.py"
            )
        _module = module
    return WitWorld


def install_log_handler() -> None:
    """Routes the `logging` module to the job's log, unless the scorer set
    up logging itself."""
    import logging

    from ._log import LogHandler

    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(LogHandler())
        if root.level == logging.WARNING:
            root.setLevel(logging.INFO)


__all__ = ["init", "run", "world", "configure", "register", "started", "require_started", "describe"]
