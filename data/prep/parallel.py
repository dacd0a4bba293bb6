"""One process-pool helper for the offline tools (converter, checker, synthetic generator).

Nothing outlives the tool: every pool worker watches the process that started it and exits within
:data:`WATCH_S` seconds after that process is gone (SIGKILL included), which also ends the forkserver and the
resource tracker (they stay only while a worker holds their pipes); an exception or a signal in the tool cancels
the videos not started yet and does not wait for the running ones.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
WATCH_S = 0.5


def _exit_with(owner: int) -> None:
    """Worker side: exit at once when the process ``owner`` no longer exists (the tool was killed)."""
    while True:
        time.sleep(WATCH_S)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(1)  # its partial output files are removed by the next run (data.store.atomic)
        except PermissionError:
            pass  # the pid exists


def _watch_owner(owner: int) -> None:
    threading.Thread(target=_exit_with, args=(owner,), daemon=True, name="watch-owner").start()


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` in order, over ``workers`` processes when ``workers > 1`` (in-process otherwise).

    Uses the 'forkserver' start method: forking a parent that already runs OpenCV/torch thread pools can
    deadlock the children. ``fn`` must be picklable (a module-level function or a ``functools.partial``).
    """
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    chunk = max(1, min(16, len(items) // (8 * workers)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                               initializer=_watch_owner, initargs=(os.getpid(),))
    finished = False
    try:
        yield from pool.map(fn, items, chunksize=chunk)
        finished = True
    finally:
        pool.shutdown(wait=finished, cancel_futures=True)


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` inside the block, so partial files are removed on the way out."""
    def stop(signum: int, frame: Any) -> None:
        logging.getLogger(__name__).error("stopped by SIGTERM: finished videos are kept; re-run to do the rest")
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def consume(results: Iterable[object]) -> None:
    """Drain an iterator of results that are not needed."""
    for _ in results:
        pass
