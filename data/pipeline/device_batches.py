"""`DeviceBatches`: the one step that turns a DataLoader batch into ``(clips, labels)`` tensors on the run's device.

``--decode cpu`` (the default): the workers decoded and transformed the clips; the batch is copied to the device.
``--decode gpu``: the workers only read the JPEG blobs (``VideoIter(decode='deferred')`` + `collate_deferred`);
here each clip is decoded by the torchvision decoder on the device (nvJPEG on CUDA) and transformed there with
the draws the worker chose. A clip with an undecodable blob is dropped from the batch and counted in its
`VideoIter`'s skipped-clip counter (the one the epoch summary reports), as the worker path replaces it; when no
clip of a batch can be decoded the call returns None and the caller skips the step.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from data.pipeline.video_iterator import DeferredClip, VideoIter, decode_deferred
from data.store.frame_decoder import DECODE_CHOICES, FrameDecoder, make_decoder
from data.store.frames_db import FrameReadError

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


def check_decode(decode: str) -> str:
    """``decode`` if it is one of `DECODE_CHOICES`, else a one-line ValueError naming ``--decode``."""
    if decode not in DECODE_CHOICES:
        raise ValueError(f"--decode '{decode}' is not one of {', '.join(DECODE_CHOICES)}")
    return decode


class DeviceBatches:
    """Callable ``loader batch -> (clips (B, 3, T, H, W) float32, labels (B,) int64) on device``, or None.

    Without ``dataset`` the batch holds decoded clips and is copied (``non_blocking``). With ``dataset`` (a
    ``VideoIter(decode='deferred')``) the batch is ``(list[DeferredClip], labels[, paths])``: decoded by
    ``decoder`` (default: torchvision on ``device``), transformed by ``dataset.video_transform``, bad clips
    dropped and counted; on CUDA the call waits for the GPU so that its time counts as reading in the speed log.
    ``can_drop``: whether the call may return fewer clips than it got (or None).
    """

    def __init__(self, device: torch.device | str, dataset: VideoIter | None = None,
                 decoder: FrameDecoder | None = None) -> None:
        self.device = torch.device(device)
        self.dataset = dataset
        self.can_drop = dataset is not None
        if dataset is not None and decoder is None:
            decoder = make_decoder("torchvision", device=str(self.device))
        self.decoder = decoder

    def __call__(self, batch: Sequence[Any]) -> Batch | None:
        data, target = batch[0], batch[1]
        if self.dataset is None:
            return data.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True)
        clips, keep = self._decode(data)
        if not clips:
            return None
        out = torch.stack(clips)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out, target[keep].to(self.device, non_blocking=True)

    def _decode(self, deferred: Sequence[DeferredClip]) -> tuple[list[torch.Tensor], list[int]]:
        clips, keep = [], []
        for i, clip in enumerate(deferred):
            try:
                clips.append(decode_deferred(clip, self.decoder, self.dataset.video_transform).to(self.device))
            except FrameReadError as exc:
                self.dataset.count_bad(clip.where, exc)
                continue
            keep.append(i)
        return clips, keep


def device_batches(device: torch.device | str, train_set: VideoIter, val_set: VideoIter,
                   decode: str = "cpu") -> tuple[DeviceBatches, DeviceBatches]:
    """The train and val `DeviceBatches` of ``--decode`` ``decode`` (`DECODE_CHOICES`) on ``device``.

    ``gpu`` on a CPU device runs the same deferred path with the torchvision decoder on the CPU, after one
    warning: there is no GPU, so the batches are decoded in the main process instead of the workers.
    """
    check_decode(decode)
    device = torch.device(device)
    if decode == "cpu":
        return DeviceBatches(device), DeviceBatches(device)
    if device.type != "cuda":
        log.warning("--decode gpu on %s: no GPU, so the batches are decoded in the main process (torchvision "
                    "JPEG decoder on the CPU) instead of the DataLoader workers; use --decode cpu here", device)
    return DeviceBatches(device, train_set), DeviceBatches(device, val_set)

