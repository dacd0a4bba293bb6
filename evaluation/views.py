"""Test views for evaluation, prediction, export and feature extraction: which frames and crops a video gives.

Multi-view testing as PySlowFast/MMAction2: ``clips`` uniformly spaced clips
(`data.pipeline.video_sampler.uniform_views`) × ``crops`` spatial crops of ``size``² taken along the longer side of
frames whose shorter side is resized to ``short_side`` (default ``size``): 1 crop = centre, 3 = left/centre/right
(top/centre/bottom for portrait frames). The crops are the data transforms' (`data.pipeline.video_transforms`:
`view_crop_boxes`, `resized_crop`, `normalise`): one antialiased bilinear resize of each box, the code training
uses, though with this geometry rather than the training policy's validation crop (shorter side 294 for
``'large'``/``'small'``). Identical views (the crops of a square frame, the repeated clips of a
short video) are computed once (:func:`unique_views`). Frames are normalised ``(x/255 - mean)/std`` in the
channel order of the model's input convention (`evaluation.inference.LoadedModel`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from data.catalog.datasets import get_dataset
from data.catalog.spec import DatasetSpec
from data.pipeline.video_sampler import uniform_views
from data.pipeline.video_transforms import normalise, resized_crop, view_crop_boxes
from data.store.video_io import VideoDecodeError, iter_frames, probe
from train.config import RunConfig

logger = logging.getLogger(__name__)


def resize_short(frames: np.ndarray, short_side: int) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 → ``(T, 3, H', W')`` uint8 with ``min(H', W') = short_side`` (antialiased bilinear)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    scale = short_side / min(h, w)
    out = (short_side, max(short_side, round(w * scale))) if h <= w else (max(short_side, round(h * scale)), short_side)
    return resized_crop(x, 0, 0, h, w, out)


@dataclass(frozen=True)
class ViewConfig:
    """How to cut a video into test views: ``clips`` × ``crops`` clips of ``clip_length`` frames, ``size``² px."""

    clip_length: int
    size: int
    frame_interval: int = 1
    clips: int = 1
    crops: int = 1
    short_side: int | None = None

    def frame_indices(self, n_frames: int) -> list[list[int]]:
        """0-based frame indices of each temporal clip."""
        return uniform_views(n_frames, self.clip_length, self.frame_interval, self.clips)

    @property
    def views(self) -> int:
        return self.clips * self.crops


def view_config(config: RunConfig | None, *, clip_length: int | None, clip_size: int | None,
                frame_interval: int | None, clips: int, crops: int, short_side: int | None = None,
                dataset: DatasetSpec | None = None) -> ViewConfig:
    """Test views: explicit arguments win, then the training run's validation clips (``config``), then the
    defaults of ``dataset`` (original checkpoints store no configuration), else of HACS (the original's)."""
    if config is None:
        spec = dataset or get_dataset("hacs")
        config = RunConfig.from_flat(dict(spec.defaults), spec.name)
    d = config.data
    return ViewConfig(clip_length=int(clip_length or d.val_clip_length), size=int(clip_size or d.val_clip_size),
                      frame_interval=int(frame_interval or d.val_frame_interval), clips=clips, crops=crops,
                      short_side=short_side)


def make_views(frames: np.ndarray, cfg: ViewConfig, mean: Sequence[float], std: Sequence[float],
               channel_order: str = "BGR") -> torch.Tensor:
    """Frames of all clips ``(clips·T, H, W, 3)`` uint8 BGR (clip after clip) → views ``(clips·crops, 3, T, S, S)``
    normalised in ``channel_order``.

    View ``v`` is clip ``v // crops``, crop ``v % crops``.
    """
    views, inverse = unique_views(frames, cfg, mean, std, channel_order)
    return views[inverse]


def unique_views(frames: np.ndarray, cfg: ViewConfig, mean: Sequence[float], std: Sequence[float],
                 channel_order: str = "BGR", clips: Sequence[Sequence[int]] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`make_views` without computing a view twice: ``(views (U, 3, T, S, S), inverse (clips·crops,))``
    with view ``v`` = ``views[inverse[v]]``. Two views are the same when they read the same frames (``clips``:
    each clip's frame indices; by default every clip counts as different) through the same crop box."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (clips·T, 3, H, W)
    boxes = view_crop_boxes(x.shape[2], x.shape[3], cfg.size, cfg.crops, cfg.short_side)
    parts = x.split(cfg.clip_length)
    keys = [tuple(c) for c in clips] if clips is not None else [(i,) for i in range(len(parts))]
    if len(keys) != len(parts):
        raise ValueError(f"{len(parts)} clips of frames but {len(keys)} lists of frame indices")
    index: dict[tuple, int] = {}
    views, inverse = [], []
    for key, clip in zip(keys, parts):
        for box in boxes:
            if (key, box) not in index:
                index[(key, box)] = len(views)
                views.append(normalise(resized_crop(clip, *box, (cfg.size, cfg.size)), mean, std, channel_order))
            inverse.append(index[(key, box)])
    return torch.stack(views), torch.tensor(inverse, dtype=torch.long)


def decode_clip_frames(path: str | Path, cfg: ViewConfig) -> tuple[np.ndarray, int]:
    """Decode a video file with PyAV and return the frames of ``cfg``'s clips ``(clips·T, H', W', 3)`` uint8 BGR
    (shorter side already resized to ``cfg.short_side or cfg.size``) and the video's frame count.

    Only the needed frames are kept: the count comes from the container; when it is missing or wrong the file
    is decoded a second time with the true count. Raises ``data.store.video_io.VideoDecodeError`` naming the file.
    """
    side = cfg.short_side or cfg.size

    def gather(n_frames: int) -> tuple[dict[int, np.ndarray], int]:
        wanted = {i for clip in cfg.frame_indices(n_frames) for i in clip} if n_frames > 0 else set()
        kept, count = {}, 0
        for i, frame in enumerate(iter_frames(path, decoder="pyav")):
            if i in wanted:
                kept[i] = resize_short(frame[None], side)[0].permute(1, 2, 0).numpy()
            count = i + 1
        return kept, count

    if not Path(path).is_file():
        raise VideoDecodeError(f"{path}: file not found")
    expected = int(probe(path).get("frames") or 0)
    kept, count = gather(expected)
    if count == 0:
        raise VideoDecodeError(f"{path}: no frames could be decoded")
    if count != expected:
        logger.debug("%s: container says %d frames, decoded %d; decoding again", path, expected, count)
        kept, count = gather(count)
    indices = [i for clip in cfg.frame_indices(count) for i in clip]
    return np.stack([kept[i] for i in indices]), count


@torch.inference_mode()
def view_probabilities(model: nn.Module, views: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Softmax probabilities ``(V, K)`` (float32, CPU) of views ``(V, 3, T, S, S)``, ``batch_size`` views at a time."""
    out = [model(chunk.to(device, non_blocking=True)).float().softmax(dim=1).cpu()
           for chunk in views.split(max(1, batch_size))]
    return torch.cat(out)
