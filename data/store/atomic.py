"""Atomic file writes: build the file under a hidden temporary name beside it, fsync, then rename.

A reader (or a run killed at any moment) sees either the previous file or the complete new one, never half
of it. Every writer in the project (checkpoints, frame databases, ``n_frames``, dictionaries, JSON, PNG)
goes through :func:`atomic_write`, so temporary files have one name pattern: ``.<name>.tmp-<pid>``.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TMP_INFIX = ".tmp-"


def temp_path(path: str | Path) -> Path:
    """The temporary name used while ``path`` is written: ``<dir>/.<name>.tmp-<pid>``."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_INFIX}{os.getpid()}")


def is_temp_name(name: str) -> bool:
    """True for names made by :func:`temp_path` (leftovers of a killed writer)."""
    return name.startswith(".") and TMP_INFIX in name


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files in ``folder`` whose writer process is gone (killed mid-write); returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        pid = path.name.rsplit(TMP_INFIX, 1)[-1]
        if is_temp_name(path.name) and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (skipped on file systems that cannot fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # the rename itself is already atomic
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; on success it is renamed onto ``path``.

    For writers that need a file name rather than a handle (SQLite, matplotlib). On any exception
    (``KeyboardInterrupt`` included) the temporary file is removed and an existing ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], fsync: bool = True) -> Path:
    """Call ``write(fh)`` on a binary handle of a temporary file, then rename it onto ``path``."""
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
    if fsync:
        fsync_dir(Path(path).parent)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), fsync=fsync)
