"""`VideoIter`: a Dataset of clips read from per-video SQLite frame stores (``video_iterator.py`` of the original).

record -> sampler indices -> ONE SQLite query for the clip's frames (`data.frames_db.read_frames`, frames in
temporal order, repeats allowed) -> transform -> ``(clip (3, T, H, W) float32, label[, path])``.

Differences from the original (spec section 2.6 and bugs 18-21): records are 0-based (the original's 1-based
keys drew record 1 twice and never record N); a repeated index yields a repeated frame (the original's SQL
``IN`` collapsed repeats into a shorter clip that was then stretched); connections are opened read-only,
lazily, per worker process and reused (the original opened one per clip); a corrupt or missing clip is
logged once, counted across DataLoader workers and replaced by a sample chosen deterministically from the
index, with a retry cap (the original retried a random video silently, forever, and could crash inside the
handler).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from data.frames_db import DB_NAME, FrameReadError, connect_readonly, read_frames
from data.video_transforms import VideoTransform

log = logging.getLogger(__name__)
Index = int | tuple[int, int, int]


class VideoIter(Dataset):
    """Clips ``(3, T, H, W)`` float32 and class indices from ``records`` (`data.labels.VideoRecord`).

    ``video_size`` is the default ``(T, H, W)``; ``dataset[(idx, T, S)]`` asks for a ``T x S x S`` clip
    (multigrid). ``sampler`` has ``sampling(range_max, v_id, num=T)`` (`data.video_sampler`);
    ``video_transform(frames (T, H, W, 3) uint8, (T, H, W)) -> (3, T, H, W)`` (`data.video_transforms`).
    """

    max_connections = 64  # per process; an LRU of open read-only connections

    def __init__(self, records: Sequence[Any], video_size: tuple[int, int, int], sampler: Any,
                 video_transform: Callable[[np.ndarray, Sequence[int]], torch.Tensor] | None = None,
                 name: str = "<NO_NAME>", return_video_path: bool = False, max_retries: int = 10, seed: int = 0,
                 classes: Mapping[str, int] | None = None):
        if not records:
            raise ValueError(f"VideoIter '{name}': no videos (check the CSV and the jpg folder)")
        self.records = list(records)
        self.video_size = self._check_size(video_size)
        self.sampler = sampler
        # no transform: resize only, pixels scaled to [0, 1]
        self.video_transform = video_transform or VideoTransform("none", False, [0.0] * 3, [1.0] * 3)
        self.name, self.return_video_path = name, bool(return_video_path)
        self.max_retries, self.seed = int(max_retries), int(seed)
        if classes is None:
            classes = {r.label: r.class_index for r in sorted(self.records, key=lambda r: r.class_index)}
        self.classes = dict(classes)
        self.labels = [label for label, _ in sorted(self.classes.items(), key=lambda kv: kv[1])]
        self.num_classes = max(self.classes.values()) + 1
        # shared with forked/spawned DataLoader workers, so the parent sees the workers' counts
        self._skipped = multiprocessing.Value("q", 0)
        self._pid, self._cons, self._reported = os.getpid(), OrderedDict(), set()
        log.info("VideoIter:: iterator initialized (phase: '%s', num: %d)", name, len(self.records))

    @classmethod
    def from_csv(cls, dataset_location: str | Path, csv_filepath: str | Path, include_timeslices: bool,
                 video_size: tuple[int, int, int], sampler: Any, video_transform: Callable | None = None,
                 name: str = "<NO_NAME>", return_video_path: bool = False, randomise: bool = True,
                 shuffle_list_seed: int | None = None, *, strict_labels: bool = False, **kwargs: Any) -> "VideoIter":
        """The original's signature: ``dataset_location`` is the folder holding ``jpg/`` (or the jpg folder).
        ``randomise`` and ``shuffle_list_seed`` are accepted and ignored (they had no effect in the original:
        the DataLoader's sampler does the shuffling)."""
        from data.labels import load_records

        location = Path(dataset_location)
        jpg_dir = location / "jpg" if (location / "jpg").is_dir() else location
        records, classes = load_records(Path(csv_filepath), jpg_dir, include_timeslices, strict_labels=strict_labels)
        return cls(records, video_size, sampler, video_transform, name=name, return_video_path=return_video_path,
                   classes=classes, **kwargs)

    @staticmethod
    def _check_size(size: Sequence[int]) -> tuple[int, int, int]:
        if len(size) != 3 or min(int(s) for s in size) < 1:
            raise ValueError(f"video size must be (T, H, W) with positive values, got {size}")
        return int(size[0]), int(size[1]), int(size[2])

    def size_setter(self, size: tuple[int, int, int]) -> None:
        """Set the default clip size ``(T, H, W)`` (and the sampler's clip length), as the original."""
        self.video_size = self._check_size(size)
        if hasattr(self.sampler, "set_num"):
            self.sampler.set_num(self.video_size[0])

    def __len__(self) -> int:
        return len(self.records)

    @property
    def skipped(self) -> int:
        """Corrupt/missing clips replaced so far (summed over all DataLoader workers)."""
        return int(self._skipped.value)

    def reset_skipped(self) -> None:
        """Reset the skipped-clip counter (e.g. at the start of an epoch)."""
        with self._skipped.get_lock():
            self._skipped.value = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cons"] = OrderedDict()  # connections never cross a process boundary
        return state

    def _connection(self, video_dir: Path | str) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            # forked worker: drop (without using) the parent's connections; sqlite handles must not cross fork
            self._pid, self._cons = os.getpid(), OrderedDict()
        con = self._cons.get(video_dir)
        if con is None:
            con = connect_readonly(Path(video_dir) / DB_NAME)
            self._cons[video_dir] = con
            if len(self._cons) > self.max_connections:
                self._cons.popitem(last=False)[1].close()
        else:
            self._cons.move_to_end(video_dir)
        return con

    def load(self, record: Any, size: tuple[int, int, int]) -> torch.Tensor:
        """The clip ``(3, T, H, W)`` of ``record``; raises FrameReadError if it cannot be read."""
        if record.n_frames < 1:
            raise FrameReadError(f"{record.path}: n_frames is {record.n_frames}; re-convert the video")
        indices = self.sampler.sampling(range_max=record.n_frames, v_id=record.index, num=size[0])
        con = self._connection(record.path)
        try:
            frames = read_frames(record.path, indices, con=con)
        except FrameReadError:
            self._cons.pop(record.path, None)
            raise
        return self.video_transform(frames, size)

    def _replacement(self, index: int, attempt: int) -> int:
        return int(np.random.default_rng([self.seed, index, attempt]).integers(len(self.records)))

    def _note_bad(self, record: Any, exc: FrameReadError) -> None:
        with self._skipped.get_lock():
            self._skipped.value += 1
        if record.path not in self._reported:
            self._reported.add(record.path)
            log.warning("VideoIter '%s': skipping unreadable clip %s (%s)", self.name, record.path, exc)

    def __getitem__(self, index: Index) -> tuple:
        if isinstance(index, (tuple, list)):
            idx, t, s = (int(v) for v in index)
            size = self._check_size((t, s, s))
        else:
            idx, size = int(index), self.video_size
        if not -len(self.records) <= idx < len(self.records):
            raise IndexError(f"VideoIter '{self.name}': index {idx} out of range for {len(self.records)} videos")
        current, last_error = idx % len(self.records), None
        for attempt in range(self.max_retries + 1):
            record = self.records[current]
            try:
                clip = self.load(record, size)
            except FrameReadError as exc:
                self._note_bad(record, exc)
                current, last_error = self._replacement(idx, attempt), exc
                continue
            label = int(record.class_index)
            return (clip, label, str(record.path)) if self.return_video_path else (clip, label)
        raise RuntimeError(f"VideoIter '{self.name}': {self.max_retries + 1} clips in a row could not be read "
                           f"(last: {last_error}); check the data with `python -m data.check <dataset dir>`")
