"""Preemption: SIGTERM, SIGUSR1 and SIGINT stop training after the current step, with a mid-epoch checkpoint.

A cluster sends SIGTERM before it kills a job, SLURM sends SIGUSR1 ahead of a time limit when asked with
``sbatch --signal=USR1@<seconds>``, and Ctrl-C sends SIGINT. :class:`Preemption` only records the signal; the
training loader (:meth:`Preemption.watch`) asks between two steps whether to stop or to write a periodic
``--save-every-minutes`` checkpoint, so a step and a save are never cut in half. Under DDP the question is a
collective (every rank stops after the same step even if one rank alone got the signal). A second Ctrl-C
stops at once (KeyboardInterrupt, exit 130); repeated SIGTERMs are ignored. The run then exits with
:data:`REQUEUE_EXIT` so that a job script can requeue it (docs/outputs.md#requeue-on-slurm).
"""
from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from train import distributed as dist

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
REQUEUE_EXIT = 75  # EX_TEMPFAIL of sysexits.h: "temporary failure, retry later"
_handed_over: list[tuple[int, float]] = []  # a signal received after start-up, before Preemption took over


class StartupPreempted(Exception):
    """SIGTERM/SIGUSR1 while the run was starting (label scan, model build, checkpoint load): nothing trained."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class StartupSignals:
    """SIGTERM/SIGUSR1 from the start of a training process: until :meth:`handover` the signal raises
    :class:`StartupPreempted` at once (nothing to save, the run exits :data:`REQUEUE_EXIT`); after it, the
    signal is kept for the :class:`Preemption` that the epochs install, which then stops before the first step.
    SIGINT keeps Python's KeyboardInterrupt. The previous handlers are restored on exit."""

    def __init__(self) -> None:
        self.starting = True
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StartupSignals:
        _handed_over.clear()
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def handover(self) -> None:
        """Start-up is over: from now a signal is recorded for the epochs' :class:`Preemption`."""
        self.starting = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.starting:
            raise StartupPreempted(signum)
        if not _handed_over:
            _handed_over.append((signum, time.monotonic()))

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        _handed_over.clear()


class Preemption:
    """Signal flag + periodic-save clock of one training process; use as a context manager."""

    def __init__(self, save_every_minutes: float = 0.0) -> None:
        self.every_s = float(save_every_minutes) * 60.0
        self.signum: int | None = None
        self.received_at: float | None = None
        self.last_save = time.monotonic()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Preemption:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        if _handed_over:  # received between the end of start-up and now
            self.signum, self.received_at = _handed_over.pop()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:  # Ctrl-C twice: do not wait for the step
            raise KeyboardInterrupt
        if self.signum is None:  # a repeated SIGTERM (the scheduler signalling every process) changes nothing
            self.signum, self.received_at = signum, time.monotonic()

    @property
    def name(self) -> str:
        """The received signal's name ('' if none)."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def poll(self) -> tuple[bool, bool]:
        """``(stop, save)`` agreed by every rank: stop if any rank got a signal, save if the clock is due."""
        stop = self.signum is not None
        save = self.every_s > 0 and time.monotonic() - self.last_save >= self.every_s
        if dist.is_initialized():
            flags = dist.all_reduce_sum(torch.tensor([float(stop), float(save)]))
            stop, save = bool(flags[0] > 0), bool(flags[1] > 0)
        return stop, save

    def stop_requested(self) -> bool:
        """True (on every rank) if any rank got a signal."""
        return self.poll()[0]

    def watch(self, loader: Any, start: int, save: Callable[[int], None], every: int = 1) -> WatchedLoader:
        """``loader`` that, before each batch at a multiple of ``every`` steps into the epoch, stops on a signal
        and calls ``save(steps_done)`` when due."""
        return WatchedLoader(loader, self, start, save, every)


class WatchedLoader:
    """Iterates a DataLoader and ends early when :class:`Preemption` says stop; ``stopped_at`` = steps done
    in the epoch (None if the epoch ran to its end).

    It asks only before a step at a multiple of ``every`` (and before the first): with ``--accumulate-grad N``
    a stop or a save falls between optimiser steps, never inside a group whose summed gradients a checkpoint
    would not hold; under DDP on CUDA the question is a collective the host waits for, asked every
    ``--log-interval`` steps (`train.engine.trainer.Trainer.poll_every`).
    """

    def __init__(self, loader: Any, guard: Preemption, start: int, save: Callable[[int], None],
                 every: int = 1) -> None:
        self.loader, self.guard, self.start, self.save = loader, guard, int(start), save
        self.every = max(1, int(every))
        self.dataset = loader.dataset
        self.stopped_at: int | None = None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        done = self.start
        for batch in self.loader:
            if done == self.start or done % self.every == 0:
                stop, save = self.guard.poll()
                if stop:
                    self.stopped_at = done
                    return
                if save:
                    self.save(done)
                    self.guard.last_save = time.monotonic()
            yield batch
            done += 1
