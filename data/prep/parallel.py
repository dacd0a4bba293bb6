"""One process-pool helper for the offline tools (converter, checker, synthetic generator)."""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` in order, over ``workers`` processes when ``workers > 1`` (in-process otherwise).

    Uses the 'forkserver' start method: forking a parent that already runs OpenCV/torch thread pools can
    deadlock the children. ``fn`` must be picklable (a module-level function or a ``functools.partial``).
    """
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    chunk = max(1, min(16, len(items) // (8 * workers)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield from pool.map(fn, items, chunksize=chunk)


def consume(results: Iterable[object]) -> None:
    """Drain an iterator of results that are not needed."""
    for _ in results:
        pass
