"""One run per results folder: a lock file (``run.lock``) created with ``O_EXCL`` and removed on every exit.

The lock holds ``{pid, host, started, argv}`` as JSON. A second run into the folder fails at once with one
line naming the running one. A lock left by a process that died without cleaning up (SIGKILL, power loss) is
recognised when it names this host and a pid that no longer exists: it is taken over with a WARNING. A lock
of another host cannot be checked from here, so it is reported and never taken over. Taking over is atomic:
a process removes a stale lock only while it holds ``fcntl.flock`` on ``run.lock.takeover`` and only if the lock
still holds what it judged stale, so of several runs starting at once over a stale lock exactly one gets it.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
TAKEOVER_NAME = "run.lock.takeover"  # kept in the folder: removing a flock file would let two holders in


class FolderBusyError(ValueError):
    """The results folder belongs to another run (a one-line user error)."""


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this host (signal 0 probes without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _describe(info: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("started", 0))))
    argv = " ".join(str(a) for a in info.get("argv", []))
    return f"pid {info.get('pid')} on {info.get('host')} since {started} ({argv})"


class RunLock:
    """The lock of one results folder; :meth:`acquire` it, :meth:`release` it (also at interpreter exit)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def read(self) -> dict[str, Any] | None:
        """The lock's content, or None if there is no (readable) lock."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # a lock being written right now, or damaged: treated as held by an unknown run

    def acquire(self) -> RunLock:
        """Create the lock or raise :class:`FolderBusyError`; a stale lock of this host is taken over."""
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        for _ in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                other = self.read()
                if other is None:
                    continue  # released between our open and read: try again
                if self._stale(other):
                    if self._remove_stale(other):
                        log.warning("%s: taking over the stale lock of %s (that process is gone)", self.path,
                                    _describe(other))
                    continue  # create it (or find the run that was faster)
                raise FolderBusyError(
                    f"{self.path.parent}: in use by the run of {_describe(other) if other else 'an unknown process'}; "
                    f"wait for it, or give this run its own folder with --run-name NAME or --model-dir DIR "
                    f"(delete {self.path} only if that run is gone)") from None
            except OSError as exc:  # a read-only or full disk, a path through a file, no permission
                raise FolderBusyError(f"{self.path}: cannot create the run's lock file ({exc.strerror or exc}); "
                                      "give --model-dir a writable folder") from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(info, fh)
            self.held = True
            atexit.register(self.release)
            return self
        raise FolderBusyError(f"{self.path}: could not be created (another run is starting in this folder)")

    def _remove_stale(self, seen: dict[str, Any]) -> bool:
        """Remove the lock if it still holds ``seen`` (judged stale), under ``flock`` on the takeover file; True
        if this process removed it. Another process may have replaced it in between: then it is left alone."""
        fd = os.open(self.path.with_name(TAKEOVER_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self.read() != seen:
                return False
            self.path.unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)  # releases the flock

    @staticmethod
    def _stale(other: dict[str, Any]) -> bool:
        if not other or other.get("host") != socket.gethostname():
            return False
        pid = int(other.get("pid", 0) or 0)
        return pid > 0 and pid != os.getpid() and not pid_alive(pid)

    def release(self) -> None:
        """Remove the lock if this process holds it (idempotent)."""
        if not self.held:
            return
        other = self.read()
        if other is not None and other.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
