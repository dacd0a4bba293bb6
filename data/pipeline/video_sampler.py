"""Temporal sampling: which 0-based frame indices of a video make a clip (``video_sampler.py`` of the original).

The index arithmetic lives in pure functions (`fit_step`, `clip_indices`, `random_clip`, `sequential_starts`,
`uniform_views`); `RandomSampling` (train) and `SequentialSampling` (evaluation) keep the original's classes and
``sampling(range_max, v_id=None, prev_failed=False)`` call on top of them.

Videos shorter than the clip (docs/differences.md#14): the frame interval first shrinks to the largest one whose
window fits (as the original's speed range would have), and if even interval 1 does not fit (``n_frames < num``)
the video is played in a loop (``0, 1, …, n-1, 0, 1, …``), so a clip always has ``num`` frames in playback order.

Randomness (docs/differences.md#17, #39): `ProcessRNG` re-seeds from ``(seed, torch worker seed)`` in each worker
process, so workers differ, and runs stay reproducible under ``torch.manual_seed``; `SampleRNG` (used for training
by `data.pipeline.loaders`) is a function of ``(seed, epoch, sample index)``, so it does not depend on the workers
at all. Evaluation windows depend only on ``(seed, video index)``, never on which worker reads the video.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch.utils.data

from data.pipeline.rng import STREAMS


class ProcessRNG:
    """A numpy Generator per process: seeded by ``(seed, stream)`` in the main process and by
    ``(seed, stream, worker seed)`` in a DataLoader worker (the worker seed changes every epoch)."""

    def __init__(self, seed: int = 0, stream: int = 0):
        self.seed, self.stream = int(seed), int(stream)
        self._key: tuple | None = None
        self._rng: np.random.Generator | None = None

    def get(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), None if info is None else info.seed)
        if key != self._key or self._rng is None:
            entropy = [self.seed, self.stream] + ([] if info is None else [int(info.seed)])
            self._rng, self._key = np.random.default_rng(entropy), key
        return self._rng


class SampleRNG:
    """A numpy Generator that is a function of ``(seed, stream, epoch, sample index)`` only: :meth:`select`
    it before each clip is read, so a clip's draws do not depend on which worker reads it or on what that
    worker read before (a resumed epoch draws what the uninterrupted one drew)."""

    def __init__(self, seed: int = 0, stream: int = 0):
        self.seed, self.stream = int(seed), int(stream)
        self._rng = np.random.default_rng([self.seed, self.stream])

    def select(self, epoch: int, index: int) -> None:
        """Draw the next numbers from the stream of sample ``index`` in ``epoch``."""
        self._rng = np.random.default_rng([self.seed, self.stream, int(epoch), int(index)])

    def get(self) -> np.random.Generator:
        return self._rng


def fit_step(n_frames: int, num: int, step: float) -> float:
    """The largest step ``<= step`` (and ``>= 1``) whose window ``(num-1)*step + 1`` fits in ``n_frames``."""
    if num <= 1 or (num - 1) * step + 1 <= n_frames:
        return step
    return float(max(1, (n_frames - 1) // (num - 1)))


def clip_indices(start: int, num: int, step: float, n_frames: int) -> list[int]:
    """``num`` indices ``start + k*step`` (truncated), wrapped modulo ``n_frames`` (loop playback)."""
    return [int(start + k * step) % n_frames for k in range(num)]


def window_length(num: int, step: float) -> int:
    """Frames spanned by a clip of ``num`` frames at ``step``."""
    return int((num - 1) * step) + 1


def random_clip(n_frames: int, num: int, step: float, rng: np.random.Generator,
                distribution: str = "uniform") -> list[int]:
    """One random window: start drawn uniformly, or normally around the video centre (std = max start / 6)."""
    if n_frames < 1:
        raise ValueError(f"cannot sample a clip from a video with {n_frames} frames")
    if num == 1:
        return [int(rng.integers(n_frames))]
    step = fit_step(n_frames, num, step)
    max_start = max(0, n_frames - window_length(num, step))
    if distribution == "uniform":
        start = int(rng.integers(max_start + 1))
    elif distribution == "normal":
        start = int(np.clip(round(rng.normal(max_start / 2, max(max_start, 1e-9) / 6)), 0, max_start))
    else:
        raise ValueError(f"unknown start distribution {distribution!r}; use 'uniform' or 'normal'")
    return clip_indices(start, num, step, n_frames)


def sequential_starts(n_frames: int, num: int, step: float) -> list[int]:
    """Starts of the non-overlapping windows of the original (``range(0, n - (L-1), L)``); ``[0]`` if none fits."""
    length = window_length(num, fit_step(n_frames, num, step))
    return list(range(0, n_frames - (length - 1), length)) or [0]


def uniform_views(n_frames: int, num: int, interval: int, views: int) -> list[list[int]]:
    """``views`` clips with starts at the centres of ``views`` equal segments of the possible starts
    (``views=1`` gives the centre clip); used for multi-clip (e.g. 10-view) testing."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    step = fit_step(n_frames, num, interval)
    max_start = max(0, n_frames - window_length(num, step))
    starts = [int(max_start * (2 * v + 1) / (2 * views)) for v in range(views)]
    return [clip_indices(s, num, step, n_frames) for s in starts]


def _check_num(num: int) -> int:
    if int(num) < 1:
        raise ValueError(f"the clip length must be >= 1, got {num}")
    return int(num)


class RandomSampling:
    """Training sampler: per clip a random interval from ``interval`` (int or list), a random speed in
    ``speed`` (the step is ``speed * interval``) and a random start (``distribution`` 'uniform' or 'normal')."""

    def __init__(self, num: int, interval: int | Sequence[int] = 1, speed: Sequence[float] = (1.0, 1.0),
                 seed: int = 0, distribution: str = "uniform"):
        self.num = _check_num(num)
        self.interval = [int(i) for i in (interval if isinstance(interval, (list, tuple)) else [interval])]
        if not self.interval or min(self.interval) < 1:
            raise ValueError(f"frame intervals must be >= 1, got {interval}")
        self.speed = (float(speed[0]), float(speed[1]))
        if not 0 < self.speed[0] <= self.speed[1]:
            raise ValueError(f"speed must be (low, high) with 0 < low <= high, got {speed}")
        self.distribution = distribution
        self.rng = ProcessRNG(seed, stream=STREAMS["sampler"])

    def set_num(self, num: int) -> None:
        """Change the clip length (multigrid)."""
        self.num = _check_num(num)

    def sampling(self, range_max: int, v_id: int | None = None, prev_failed: bool = False,
                 num: int | None = None) -> list[int]:
        """``num`` (default ``self.num``) frame indices in ``[0, range_max)``."""
        rng = self.rng.get()
        num = self.num if num is None else _check_num(num)
        interval = self.interval[int(rng.integers(len(self.interval)))]
        step = float(interval)
        if num > 1 and self.speed != (1.0, 1.0):
            # original: the speed range is capped so that the window fits in the video
            speed_max = min(self.speed[1], (range_max - 1) / ((num - 1) * interval))
            step = rng.uniform(self.speed[0], max(speed_max, self.speed[0])) * interval
        return random_clip(int(range_max), num, step, rng, self.distribution)


class SequentialSampling:
    """Evaluation sampler: non-overlapping windows of each video, (optionally) shuffled once per video with an
    RNG derived from ``(seed, v_id)``; ``fix_cursor=True`` always returns that video's first window."""

    def __init__(self, num: int, interval: int = 1, shuffle: bool = False, fix_cursor: bool = False, seed: int = 0):
        self.num = _check_num(num)
        self.interval = int(interval)
        if self.interval < 1:
            raise ValueError(f"frame interval must be >= 1, got {interval}")
        self.shuffle, self.fix_cursor, self.seed = bool(shuffle), bool(fix_cursor), int(seed)
        # v_id -> cursor; with fix_cursor=False the cursor is per-process state, as in the original
        self._cursor: dict[tuple, int] = {}

    def set_num(self, num: int) -> None:
        """Change the clip length."""
        self.num = _check_num(num)

    def windows(self, range_max: int, v_id: int | None, num: int | None = None) -> list[int]:
        """Window starts of a video in the order they are visited (deterministic given seed and v_id)."""
        starts = sequential_starts(int(range_max), self.num if num is None else num, self.interval)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, STREAMS["val_window"]] + ([] if v_id is None else [int(v_id)]))
            starts = [starts[i] for i in rng.permutation(len(starts))]
        return starts

    def sampling(self, range_max: int, v_id: int | None = None, prev_failed: bool = False,
                 num: int | None = None) -> list[int]:
        """``num`` (default ``self.num``) frame indices of the video's current window."""
        if range_max < 1:
            raise ValueError(f"cannot sample a clip from a video with {range_max} frames")
        num = self.num if num is None else _check_num(num)
        starts = self.windows(range_max, v_id, num)
        key = (v_id, int(range_max), num)
        cursor = (self._cursor.get(key, -1) + 1) % len(starts)
        if prev_failed or not self.fix_cursor:
            self._cursor[key] = cursor
        step = fit_step(int(range_max), num, self.interval)
        return clip_indices(starts[cursor], num, step, int(range_max))
