"""What a person sees while an epoch runs: the speed/metric lines, a progress bar or progress lines, and ETAs.

Every ``log_interval`` iterations the original's speed line is logged (`train.monitor.callback`), from one read
of the pass's device sums (`train.monitor.metric.RunningMetrics`) and of the :class:`StepClock`. On a terminal a
tqdm bar shows the position; without one (a cluster job's log, ``nohup``, CI) a progress line is logged at
every ~10% of the epoch and at least every ``every_s`` seconds: ``iteration x/N``, clips/s, the loss of the last
speed line, and the ETA of the epoch and of the whole run. Epochs are shown 1-based everywhere (console, CSVs,
file names).
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from train.distributed import is_main
from train.monitor.callback import CallbackList, default_callbacks
from train.monitor.metric import RunningMetrics, rates

log = logging.getLogger(__name__)

PROGRESS_FRACTION = 0.1  # a progress line every 10% of an epoch (off a terminal) ...
PROGRESS_EVERY_S = 60.0  # ... and at least once a minute


def format_duration(seconds: float) -> str:
    """``3725 -> '1h02m'``, ``95 -> '1m35s'``, ``7 -> '7s'``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class StepClock:
    """Forward and backward seconds of the steps since the last :meth:`read`, without waiting for the device
    at every step.

    On CPU an operation has finished when it returns, so host-clock marks are exact. On CUDA a mark is a recorded
    CUDA event and the times are summed at :meth:`read` (one wait for the last event, when the speed line is due).
    ``sync``: wait for the device at every mark instead, so that each step's host times are exact (benchmarks).
    """

    def __init__(self, device: torch.device | str, sync: bool = False) -> None:
        self.events = torch.device(device).type == "cuda" and not sync
        self.cuda_sync = torch.device(device).type == "cuda" and sync
        self.marks: list[tuple[Any, Any, Any]] = []
        self.forward = self.backward = 0.0

    def mark(self) -> Any:
        """Now: a host time in seconds, or a recorded CUDA event."""
        if self.events:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        if self.cuda_sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def add(self, start: Any, middle: Any, end: Any = None) -> tuple[float, float]:
        """Count one step's forward (``start`` to ``middle``) and backward (``middle`` to ``end``; None for a
        forward pass alone); returns its seconds (zeros with CUDA events: they are known at :meth:`read`)."""
        if self.events:
            self.marks.append((start, middle, end))
            return 0.0, 0.0
        forward, backward = middle - start, (end - middle) if end is not None else 0.0
        self.forward, self.backward = self.forward + forward, self.backward + backward
        return forward, backward

    def read(self) -> tuple[float, float]:
        """``(forward, backward)`` seconds since the last read, and start counting again."""
        if self.marks:
            self.marks[-1][2 if self.marks[-1][2] is not None else 1].synchronize()
            for start, middle, end in self.marks:
                self.forward += start.elapsed_time(middle) / 1000.0
                self.backward += middle.elapsed_time(end) / 1000.0 if end is not None else 0.0
            self.marks.clear()
        out = (self.forward, self.backward)
        self.forward = self.backward = 0.0
        return out

    def reset(self) -> None:
        """Forget the steps since the last read (without waiting for them)."""
        self.marks.clear()
        self.forward = self.backward = 0.0


@dataclass
class Tally:
    """Seconds of reading, forward and backward, and clips, since the last speed line."""

    read: float = 0.0
    forward: float = 0.0
    backward: float = 0.0
    clips: int = 0

    def add(self, read: float, forward: float, backward: float, clips: int) -> None:
        self.read, self.forward, self.backward = self.read + read, self.forward + forward, self.backward + backward
        self.clips += clips

    def per_clip(self) -> dict[str, float | None]:
        n = max(1, self.clips)
        return {"read_elapse": self.read / n, "forward_elapse": self.forward / n,
                "backward_elapse": self.backward / n if self.backward else None}


@dataclass
class Monitor:
    """Logging policy of a run: speed lines every ``log_interval`` steps, progress, ETAs (rank 0 only).

    ``end_epoch`` and ``start_epoch`` give the run's ETA; ``interactive`` None means "stderr is a terminal".
    """

    log_interval: int = 50
    callbacks: CallbackList = field(default_factory=default_callbacks)
    end_epoch: int | None = None
    start_epoch: int = 0
    interactive: bool | None = None
    every_s: float = PROGRESS_EVERY_S
    epoch_seconds: list[float] = field(default_factory=list)

    def run_eta(self, epoch: int, epoch_left_s: float = 0.0) -> float | None:
        """Seconds left in the run while in (0-based) ``epoch``: the rest of it plus the mean epoch time after it."""
        if self.end_epoch is None or not self.epoch_seconds:
            return None
        mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
        return epoch_left_s + mean * max(0, self.end_epoch - epoch - 1)

    @contextlib.contextmanager
    def epoch(self, epoch: int, total: int, phase: str, meter: RunningMetrics | None = None,
              clock: StepClock | None = None, start: int = 0, reduce: bool = False) -> Iterator[Progress]:
        """A :class:`Progress` for one pass of ``total`` iterations from iteration ``start``; ``phase`` is
        'train' or 'val'; ``meter`` and ``clock`` hold the pass's scores and step times (default: empty ones on
        the CPU); ``reduce``: the speed line's sums are summed over the ranks (every rank reads them at the same
        step: training, not validation, whose ranks hold different numbers of batches)."""
        meter, clock = meter or RunningMetrics("cpu"), clock or StepClock("cpu")
        show = is_main()
        terminal = sys.stderr.isatty() if self.interactive is None else self.interactive
        bar = tqdm(total=total, initial=start, desc=f"Epoch {epoch + 1} {phase}", leave=False,
                   dynamic_ncols=True, disable=not (show and terminal))
        clock.reset()
        progress = Progress(self, epoch, total, phase, bar, show, show and not terminal, meter, clock, start, reduce)
        with logging_redirect_tqdm() if (show and terminal) else contextlib.nullcontext():
            try:
                yield progress
            finally:
                bar.close()


class Progress:
    """Counts one epoch's iterations and logs the speed and progress lines."""

    def __init__(self, monitor: Monitor, epoch: int, total: int, phase: str, bar: tqdm, show: bool,
                 lines: bool, meter: RunningMetrics, clock: StepClock, start: int = 0, reduce: bool = False) -> None:
        self.monitor, self.epoch, self.total, self.phase = monitor, epoch, max(0, int(total)), phase
        self.bar, self.show, self.lines = bar, show, lines
        self.meter, self.clock, self.reduce = meter, clock, reduce
        self.tally = Tally()
        self.done, self.first, self.clips = start, start, 0
        self.loss: float | None = None  # of the last speed line
        self.due = False  # a speed line waits for the end of the current optimiser step
        self.started = self.last_line = time.perf_counter()
        self.next_fraction = PROGRESS_FRACTION

    def advance(self, read_s: float, clips: int, lr: float | None = None, shape: tuple[int, ...] | None = None,
                stepped: bool = True) -> dict[str, float] | None:
        """One iteration finished: its reading seconds, clips, lr and batch shape (B summed over ranks; its
        scores are in the meter, its times in the clock); ``stepped``: it ended an optimiser step (False for
        the first micro-batches of ``--accumulate-grad``, whose scores wait for their step). At every multiple
        of ``log_interval`` iterations into the epoch (at the next optimiser step if that falls inside one):
        reads the meter and the clock (the pass's only host transfers before its end), logs the speed line
        (rank 0) and returns the sums read."""
        self.tally.add(read_s, 0.0, 0.0, clips)
        self.done += 1
        self.clips += clips
        self.bar.update(1)
        self.due = self.due or self.done % self.monitor.log_interval == 0
        sums = None
        if self.due and stepped:
            self.due = False
            sums = self.meter.read(self.reduce)
            self.tally.forward, self.tally.backward = self.clock.read()
            values = rates(sums)
            self.loss = values["loss-ce"]
            if self.show:
                self._speed_line(values, lr, shape)
            self.tally = Tally()
        if self.show and self.lines and self.total and self._line_due():
            self._progress_line()
        return sums

    def _speed_line(self, values: dict[str, float], lr: float | None, shape: tuple[int, ...] | None) -> None:
        namevals: list[tuple[str, Any]] = [("loss-ce", values["loss-ce"]), ("top1", values["top1"]),
                                           ("top5", values["top5"]), ("batch_size", shape), ("lr", lr)]
        if not math.isnan(values["grad_norm"]):  # --clip-grad-norm: the interval's mean norm before clipping
            namevals.append(("grad_norm", values["grad_norm"]))
        self.monitor.callbacks(epoch=self.epoch + 1, batch=self.done, prefix="" if self.phase == "train" else "(val) ",
                               namevals=namevals, **self.tally.per_clip())

    def _line_due(self) -> bool:
        now = time.perf_counter()
        if self.done >= self.total:
            return False  # the epoch summary follows
        if self.done / self.total >= self.next_fraction or now - self.last_line >= self.monitor.every_s:
            while self.next_fraction <= self.done / self.total:
                self.next_fraction += PROGRESS_FRACTION
            self.last_line = now
            return True
        return False

    def _progress_line(self) -> None:
        elapsed = time.perf_counter() - self.started
        left = elapsed / max(1, self.done - self.first) * (self.total - self.done)
        run = self.monitor.run_eta(self.epoch, left) if self.phase == "train" else None
        loss = self.loss
        parts = [f"Epoch {self.epoch + 1} {self.phase}: iteration {self.done}/{self.total}"]
        parts.append(f"{self.clips / max(elapsed, 1e-9):.1f} clips/s")
        if loss is not None and not math.isnan(loss):
            parts.append(f"loss {loss:.4f}")
        parts.append(f"epoch ETA {format_duration(left)}")
        if run is not None:
            parts.append(f"run ETA {format_duration(run)}")
        log.info(", ".join(parts))
