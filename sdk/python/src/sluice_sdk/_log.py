"""Logging through the host: each line is tagged with job, mini-batch and
instance and counts against `limits.max_log_kb`. `print` works too (stdout
and stderr become log lines); so does the `logging` module, routed here."""

from __future__ import annotations

import enum
import logging
from typing import Any

from . import _bindings as _b
from . import _export


class Level(enum.IntEnum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


def log(level: Level, message: str, *args: Any) -> None:
    """Sends one line to the job's log; `args` are %-formatted into
    `message`, as the `logging` module does."""
    _export.require_started("sluice_sdk.log()")
    if args:
        message = message % args
    _b.log.log(_b.log.Level(int(level)), str(message))


def trace(message: str, *args: Any) -> None:
    log(Level.TRACE, message, *args)


def debug(message: str, *args: Any) -> None:
    log(Level.DEBUG, message, *args)


def info(message: str, *args: Any) -> None:
    log(Level.INFO, message, *args)


def warn(message: str, *args: Any) -> None:
    log(Level.WARN, message, *args)


warning = warn


def error(message: str, *args: Any) -> None:
    log(Level.ERROR, message, *args)


def _level_of(levelno: int) -> Level:
    if levelno >= logging.ERROR:
        return Level.ERROR
    if levelno >= logging.WARNING:
        return Level.WARN
    if levelno >= logging.INFO:
        return Level.INFO
    if levelno >= logging.DEBUG:
        return Level.DEBUG
    return Level.TRACE


class LogHandler(logging.Handler):
    """A `logging` handler writing to the job's log (installed on the root
    logger when the scorer has configured no handler of its own). Before
    `init` (at build time) records go nowhere."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _export.started():
            return
        try:
            _b.log.log(_b.log.Level(int(_level_of(record.levelno))), self.format(record))
        except Exception:
            self.handleError(record)
