"""`VideoFiles`: `VideoIter` reading each clip straight from its video file (``--source video``) instead of the store.

record (``path`` = the file, ``start``/``end`` = the cut, ``n_frames`` from ``videos.json``) -> the same sampler
indices -> `data.store.video_clips.read_clip` (PyAV, one decoder thread per DataLoader worker; seeks to the last
keyframe before the clip) -> frames ``(T, H, W, 3)`` uint8 BGR -> the same transform. Frame ``i`` is the frame a
conversion with the data set's ``--fps``/``--short-side``/``--size`` (recorded in ``videos.json``) stores as
frame ``i``, at the same size, so the sampler, the augmentations (whose crops depend on the frame size), the
multigrid ``(idx, T, S)`` keys, the per-sample random streams and the exact mid-epoch resume are those of the
store. A video that cannot be decoded raises FrameReadError and is skipped, counted and replaced exactly as a
bad frame database is (`VideoIter.__getitem__`). Decoding is CPU work in the workers: ``--decode gpu`` (JPEG
blobs to the device) does not apply and is refused.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from data.pipeline.video_iterator import VideoIter
from data.store.frames_db import FrameReadError
from data.store.video_clips import FrameOptions, read_clip
from data.store.video_io import VideoDecodeError

log = logging.getLogger(__name__)


class VideoFiles(VideoIter):
    """Clips ``(3, T, H, W)`` float32 and class indices decoded from the video files of ``records``
    (`data.catalog.video_sources.VideoSources.find`); ``options`` are the data set's frame options. Every other
    argument and behaviour is `VideoIter`'s."""

    def __init__(self, records: Sequence[Any], video_size: tuple[int, int, int], sampler: Any,
                 video_transform: Any = None, *, options: FrameOptions | None = None, **kwargs: Any):
        if kwargs.get("decode", "frames") != "frames":
            raise ValueError("--decode gpu moves the store's JPEG blobs to the device; with --source video the "
                             "workers decode the video files: use --decode cpu")
        super().__init__(records, video_size, sampler, video_transform, **kwargs)
        self.options = options or FrameOptions()

    def load(self, record: Any, size: tuple[int, int, int]) -> torch.Tensor:
        """The clip ``(3, T, H, W)`` of ``record``; raises FrameReadError if its file cannot be decoded."""
        if record.n_frames < 1:
            raise FrameReadError(f"{record.path}: n_frames is {record.n_frames}; re-run `python -m data.prepare`")
        indices = self.sampler.sampling(range_max=record.n_frames, v_id=record.index, num=size[0])
        try:
            frames = read_clip(record.path, indices, record.start, record.end, self.options, record.n_frames)
        except VideoDecodeError as exc:
            raise FrameReadError(str(exc)) from None
        return self.video_transform(frames, size)
