"""Logging set up once, in ``run()``: coloured console (coloredlogs) and a plain log file, on rank 0 only.

Nothing installs handlers at import time, so the log file is really written (docs/differences.md#34).
"""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import coloredlogs

FILE_FORMAT = "%(asctime)s %(levelname)s: %(message)s"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_ANSI = re.compile(r"\033\[[0-9;]*m")
_OWNED = "_srtg_handler"
QUIET_LOGGERS = ("matplotlib", "PIL")


class PlainFormatter(logging.Formatter):
    """File formatter that strips the ANSI colour codes the SpeedMonitor puts in its messages."""

    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


def setup_logging(log_file: str | Path | None, debug: bool = False, rank: int = 0) -> None:
    """Configure the root logger for this process.

    Rank 0: coloured console (coloredlogs) at INFO (DEBUG with ``debug``) plus a plain file handler on
    ``log_file`` (appended, so a resumed run continues the same log). Other ranks: warnings and errors only,
    console only, prefixed by their rank. Calling it again replaces the handlers it installed before.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OWNED, False)]:
        root.removeHandler(handler)
        handler.close()
    level = logging.DEBUG if debug else logging.INFO
    if rank != 0:
        level = logging.WARNING
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:  # one-time notices such as matplotlib's "generated new fontManager"
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    fmt = CONSOLE_FORMAT if rank == 0 else f"[rank {rank}] {CONSOLE_FORMAT}"
    if sys.stderr.isatty():
        console.setFormatter(coloredlogs.ColoredFormatter(fmt))
    else:
        console.setFormatter(PlainFormatter(fmt))
    setattr(console, _OWNED, True)
    root.addHandler(console)
    if rank == 0 and log_file:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        file_handler.setLevel(level)
        file_handler.setFormatter(PlainFormatter(FILE_FORMAT))
        setattr(file_handler, _OWNED, True)
        root.addHandler(file_handler)


def close_logging() -> None:
    """Remove and close the handlers installed by :func:`setup_logging` (flushes the log file)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OWNED, False)]:
        root.removeHandler(handler)
        handler.close()
