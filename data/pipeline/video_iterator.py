"""`VideoIter`: a Dataset of clips read from per-video SQLite frame stores (``video_iterator.py`` of the original).

record -> sampler indices -> ONE SQLite query for the clip's distinct frames (`data.store.frames_db.read_unique_blobs`)
-> decode (`data.store.frame_decoder`, OpenCV by default; at 1/2, 1/4 or 1/8 scale when the transform still gets frames
at least as large as it needs) -> frames in temporal order, repeats allowed -> transform ->
``(clip (3, T, H, W) float32, label[, path])``. With ``decode='deferred'`` the workers stop after the query
and `decode_deferred` decodes and transforms each clip of the collated batch on a device (e.g. a GPU JPEG
decoder; `data.pipeline.device_batches.DeviceBatches` in training, `decode_batch` for a whole batch).

Differences from the original (spec section 2.6 and bugs 18-21): records are 0-based (the original's 1-based
keys drew record 1 twice and never record N); a repeated index yields a repeated frame (the original's SQL
``IN`` collapsed repeats into a shorter clip that was then stretched); connections are opened read-only,
lazily, per worker process and reused (the original opened one per clip); a corrupt or missing clip is
logged once, counted across DataLoader workers and replaced by a sample chosen deterministically from the
index, with a retry cap (the original retried a random video silently, forever, and could crash inside the
handler).
"""
from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data.pipeline.video_sampler import SampleRNG
from data.pipeline.video_transforms import VideoTransform
from data.store.frame_decoder import FrameDecoder, OpenCVDecoder, choose_reduce, jpeg_size
from data.store.frames_db import DB_NAME, FrameReadError, connect_readonly, decode_clip, read_unique_blobs

log = logging.getLogger(__name__)
Index = int | tuple[int, int, int]
DECODE_MODES = ("frames", "deferred")


class VideoIter(Dataset):
    """Clips ``(3, T, H, W)`` float32 and class indices from ``records`` (`data.catalog.labels.VideoRecord`).

    ``video_size`` is the default ``(T, H, W)``; ``dataset[(idx, T, S)]`` asks for a ``T x S x S`` clip
    (multigrid). ``sampler`` has ``sampling(range_max, v_id, num=T)`` (`data.pipeline.video_sampler`);
    ``video_transform(frames (T, H, W, 3) uint8, (T, H, W)) -> (3, T, H, W)`` (`data.pipeline.video_transforms`).
    ``decoder`` (`data.store.frame_decoder.FrameDecoder`, default OpenCV) decodes the JPEG blobs; with
    ``reduced_decode`` it decodes at the largest reduction its ``reductions`` allow that keeps the frame's shorter
    side >= ``video_transform.min_input_side(size)`` (full size for transforms without that method).
    ``decode='deferred'``: items are ``(DeferredClip, label[, path])`` for `collate_deferred` + `decode_batch`.
    """

    max_connections = 64  # per process; an LRU of open read-only connections

    def __init__(self, records: Sequence[Any], video_size: tuple[int, int, int], sampler: Any,
                 video_transform: Callable[[np.ndarray, Sequence[int]], torch.Tensor] | None = None,
                 name: str = "<NO_NAME>", return_video_path: bool = False, max_retries: int = 10, seed: int = 0,
                 classes: Mapping[str, int] | None = None, decoder: FrameDecoder | None = None,
                 reduced_decode: bool = True, decode: str = "frames"):
        if not records:
            raise ValueError(f"VideoIter '{name}': no videos (check the CSV and the jpg folder)")
        self.records = list(records)
        self.video_size = self._check_size(video_size)
        self.sampler = sampler
        # no transform: resize only, pixels scaled to [0, 1]
        self.video_transform = video_transform or VideoTransform("none", False, [0.0] * 3, [1.0] * 3)
        self.name, self.return_video_path = name, bool(return_video_path)
        self.max_retries, self.seed = int(max_retries), int(seed)
        if decode not in DECODE_MODES:
            raise ValueError(f"VideoIter '{name}': decode must be one of {DECODE_MODES}, got {decode!r}")
        self.decoder, self.reduced_decode, self.decode = decoder or OpenCVDecoder(), bool(reduced_decode), decode
        if classes is None:
            classes = {r.label: r.class_index for r in sorted(self.records, key=lambda r: r.class_index)}
        self.classes = dict(classes)
        self.labels = [label for label, _ in sorted(self.classes.items(), key=lambda kv: kv[1])]
        self.num_classes = max(self.classes.values()) + 1
        # shared with forked/spawned DataLoader workers, so the parent sees the workers' counts
        self._skipped = multiprocessing.Value("q", 0)
        self._pid, self._cons, self._reported = os.getpid(), OrderedDict(), set()
        log.info("VideoIter:: iterator initialized (phase: '%s', num: %d)", name, len(self.records))

    @staticmethod
    def _check_size(size: Sequence[int]) -> tuple[int, int, int]:
        if len(size) != 3 or min(int(s) for s in size) < 1:
            raise ValueError(f"video size must be (T, H, W) with positive values, got {size}")
        return int(size[0]), int(size[1]), int(size[2])

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

    def reduce_for(self, blob: bytes, size: Sequence[int], decoder: FrameDecoder | None = None) -> int:
        """Decode reduction for a clip of ``size`` whose first JPEG is ``blob`` (1 when reduced decoding is off,
        the transform cannot say what it needs, or the header cannot be read). The original always decoded at
        full size (docs/differences.md#25)."""
        decoder = decoder or self.decoder
        min_side = getattr(self.video_transform, "min_input_side", None)
        if not self.reduced_decode or min_side is None or len(decoder.reductions) < 2:
            return 1
        hw = jpeg_size(blob)
        return 1 if hw is None else choose_reduce(min(hw), min_side(size), decoder.reductions)

    def load(self, record: Any, size: tuple[int, int, int]) -> torch.Tensor | DeferredClip:
        """The clip ``(3, T, H, W)`` of ``record`` (a `DeferredClip` when deferred); raises FrameReadError if it
        cannot be read."""
        if record.n_frames < 1:
            raise FrameReadError(f"{record.path}: n_frames is {record.n_frames}; re-convert the video")
        indices = self.sampler.sampling(range_max=record.n_frames, v_id=record.index, num=size[0])
        con = self._connection(record.path)
        where, frame_indices = str(Path(record.path) / DB_NAME), sorted(set(int(i) for i in indices))
        try:
            blobs, positions = read_unique_blobs(con, record.path, indices)
            reduce = self.reduce_for(blobs[0], size)
            if self.decode == "deferred":
                return DeferredClip(blobs, positions, size, reduce, self._clip_rng(), where, frame_indices)
            frames = decode_clip(blobs, positions, where, self.decoder, reduce, frame_indices)
        except FrameReadError:
            self._cons.pop(record.path, None)
            raise
        return self.video_transform(frames if isinstance(frames, np.ndarray) else frames.cpu().numpy(), size)

    def _clip_rng(self) -> np.random.Generator | None:
        """The generator of the clip's transform draws (None if the transform has no RNG): a copy of the
        per-sample stream (`SampleRNG`, selected for this clip only), so the deferred clip is transformed with
        the very draws the worker path would use; from a per-process stream, a generator seeded by one draw,
        so the next clip of the worker draws other numbers."""
        rng = getattr(self.video_transform, "rng", None)
        if isinstance(rng, SampleRNG):
            return copy.deepcopy(rng.get())
        return np.random.default_rng(int(rng.get().integers(2 ** 63))) if hasattr(rng, "get") else None

    def _replacement(self, index: int, attempt: int) -> int:
        return int(np.random.default_rng([self.seed, index, attempt]).integers(len(self.records)))

    def count_bad(self, where: Any, exc: Exception) -> None:
        """Count one skipped clip (in any process: the counter is shared) and warn once per ``where``."""
        with self._skipped.get_lock():
            self._skipped.value += 1
        if where not in self._reported:
            self._reported.add(where)
            log.warning("VideoIter '%s': skipping unreadable clip %s (%s)", self.name, where, exc)

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
                self.count_bad(record.path, exc)
                current, last_error = self._replacement(idx, attempt), exc
                continue
            label = int(record.class_index)
            return (clip, label, str(record.path)) if self.return_video_path else (clip, label)
        raise RuntimeError(f"VideoIter '{self.name}': {self.max_retries + 1} clips in a row could not be read "
                           f"(last: {last_error}); check the data with `python -m data.check <dataset dir>`")


@dataclass
class DeferredClip:
    """A clip read but not decoded (``VideoIter(decode='deferred')``): the distinct JPEG ``blobs`` (ascending frame
    order), ``positions`` (per clip frame, its blob), the requested ``size`` ``(T, h, w)``, the decode ``reduce``
    chosen in the worker, the ``seed`` of the clip's transform draws (None: the transform's own RNG), and
    ``where``/``frame_indices`` to name a bad blob."""

    blobs: list[bytes]
    positions: list[int]
    size: tuple[int, int, int]
    reduce: int
    rng: np.random.Generator | None
    where: str
    frame_indices: list[int]


def collate_deferred(batch: Sequence[tuple]) -> tuple:
    """DataLoader ``collate_fn`` for deferred items: ``(list[DeferredClip], labels (B,) int64[, paths])``."""
    columns = list(zip(*batch))
    out = (list(columns[0]), torch.as_tensor(columns[1], dtype=torch.int64))
    return out + (list(columns[2]),) if len(columns) > 2 else out


def decode_deferred(clip: DeferredClip, decoder: FrameDecoder, transform: Callable) -> torch.Tensor:
    """Decode and transform one `DeferredClip` -> ``(3, T, h, w)`` float32 on ``decoder``'s device.

    Decoded at the worker's reduction when ``decoder`` supports it (full size otherwise), transformed with the
    clip's own draws. Raises FrameReadError naming the database and frame of an undecodable blob.
    """
    reduce = clip.reduce if clip.reduce in decoder.reductions else 1
    frames = decode_clip(clip.blobs, clip.positions, clip.where, decoder, reduce, clip.frame_indices)
    # a copy: decoding the same DeferredClip twice gives the same clip
    rng = None if clip.rng is None else copy.deepcopy(clip.rng)
    return transform(frames, clip.size) if rng is None else transform(frames, clip.size, rng=rng)


def decode_batch(blobs_list: Sequence[DeferredClip], decoder: FrameDecoder, transform: Callable,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """Decode and transform a collated batch of `DeferredClip` (`decode_deferred`) -> ``(B, 3, T, h, w)``
    float32 on ``device``.

    With e.g. ``make_decoder('torchvision', device='cuda')`` the frames stay on the GPU for the transform. The
    result equals `VideoIter`'s clips decoded in the worker with the same transform draws, up to the JPEG
    decoder's and the resize's rounding. Raises FrameReadError for the first undecodable blob
    (`data.pipeline.device_batches.DeviceBatches` skips bad clips instead).
    """
    return torch.stack([decode_deferred(clip, decoder, transform).to(device) for clip in blobs_list])
