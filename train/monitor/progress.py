"""What a person sees while an epoch runs: the speed/metric lines, a progress bar or progress lines, and ETAs.

Every ``log_interval`` iterations the original's speed line is logged (`train.monitor.callback`). On a terminal a
tqdm bar shows the position; without one (a cluster job's log, ``nohup``, CI) a progress line is logged at
every ~10% of the epoch and at least every ``every_s`` seconds: ``iteration x/N``, clips/s, loss, and the
ETA of the epoch and of the whole run. Epochs are shown 1-based everywhere (console, CSVs, file names).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from train.distributed import is_main
from train.monitor.callback import CallbackList, default_callbacks
from train.monitor.metric import MetricList, default_metrics

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
    def epoch(self, epoch: int, total: int, phase: str) -> Iterator[Progress]:
        """A :class:`Progress` for one pass of ``total`` iterations; ``phase`` is 'train' or 'val'."""
        show = is_main()
        terminal = sys.stderr.isatty() if self.interactive is None else self.interactive
        bar = tqdm(total=total, desc=f"Epoch {epoch + 1} {phase}", leave=False, dynamic_ncols=True,
                   disable=not (show and terminal))
        progress = Progress(self, epoch, total, phase, bar, show, show and not terminal)
        with logging_redirect_tqdm() if (show and terminal) else contextlib.nullcontext():
            try:
                yield progress
            finally:
                bar.close()


class Progress:
    """Counts one epoch's iterations and logs the speed and progress lines."""

    def __init__(self, monitor: Monitor, epoch: int, total: int, phase: str, bar: tqdm, show: bool,
                 lines: bool) -> None:
        self.monitor, self.epoch, self.total, self.phase = monitor, epoch, max(0, int(total)), phase
        self.bar, self.show, self.lines = bar, show, lines
        self.tally = Tally()
        self.interval: MetricList = default_metrics()
        self.done = self.clips = 0
        self.started = self.last_line = time.perf_counter()
        self.next_fraction = PROGRESS_FRACTION

    def advance(self, read_s: float, forward_s: float, backward_s: float, clips: int) -> None:
        """One iteration finished: its timings and clips (its metrics are already in ``interval``)."""
        self.tally.add(read_s, forward_s, backward_s, clips)
        self.done += 1
        self.clips += clips
        self.bar.update(1)
        if not self.show:
            return
        if self.done % self.monitor.log_interval == 0:
            tag = "" if self.phase == "train" else "(val) "
            self.monitor.callbacks(epoch=self.epoch + 1, batch=self.done, prefix=tag,
                                   namevals=self.interval.get_name_value(), **self.tally.per_clip())
            self.interval.reset()
            self.tally = Tally()
        if self.lines and self.total and self._line_due():
            self._progress_line()

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
        left = elapsed / self.done * (self.total - self.done)
        run = self.monitor.run_eta(self.epoch, left) if self.phase == "train" else None
        loss = self.interval.as_dict().get("loss-ce") if self.interval.num_samples else None
        parts = [f"Epoch {self.epoch + 1} {self.phase}: iteration {self.done}/{self.total}"]
        parts.append(f"{self.clips / max(elapsed, 1e-9):.1f} clips/s")
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        parts.append(f"epoch ETA {format_duration(left)}")
        if run is not None:
            parts.append(f"run ETA {format_duration(run)}")
        log.info(", ".join(parts))
