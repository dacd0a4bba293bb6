"""Multi-view testing of a trained model on a data set split (used by ``evaluate.py``).

Each video gives ``clips × crops`` views (`evaluation.views.make_views`); every view is scored on its own
(clip-level accuracy) and the softmax probabilities of a video's views are averaged (video-level accuracy,
as PySlowFast/MMAction2 report). Under DDP the videos are sharded across ranks (``records[rank::world]``) and the
per-video results are summed across ranks, so every rank ends with the full table and rank 0 writes it.
A video whose frames cannot be read is logged with its path and the reason, counted as failed and left out of
every accuracy. A video with a non-finite (NaN/inf) output in any view is never scored as a prediction (``topk``
would rank NaN first): it is counted apart (``nonfinite_videos``) and makes the summary invalid. Identical views
of a video are computed once and count as often as they occur (`evaluation.views.unique_views`).
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from data.catalog.datasets import get_dataset, list_datasets
from data.catalog.labels import VideoRecord
from data.catalog.spec import DatasetSpec
from data.store.frames_db import FrameReadError, read_frames
from data.store.video_clips import FrameOptions, read_clip
from data.store.video_io import VideoDecodeError
from evaluation.views import ViewConfig, make_views, unique_views, view_probabilities
from train import distributed as dist
from train.plots.confusion import plot_confusion  # noqa: F401 (evaluate.py imports it from here)

logger = logging.getLogger(__name__)


def infer_spec(spec_arg: str | None, saved: DatasetSpec | None, checkpoint: Path | None) -> DatasetSpec:
    """The data set to evaluate on: ``--spec`` (a registered name, `data.catalog.datasets`), else the one the
    checkpoint was trained on; original checkpoints store none, so they need ``--spec``."""
    if spec_arg:
        return get_dataset(spec_arg)
    if saved is not None:
        return saved
    raise ValueError(f"{checkpoint}: the checkpoint does not say which data set it was trained on (an original "
                     f"checkpoint); pass --spec, one of {', '.join(list_datasets())}")


def read_stored(record: VideoRecord, indices: Sequence[int]) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` BGR of ``record`` from its frame store (``--source store``)."""
    return read_frames(record.path, indices)


@dataclass(frozen=True)
class VideoFileReader:
    """Frames of ``record`` decoded from its video file with the data set's frame ``options`` (``--source video``,
    `data.store.video_clips`); an unreadable file raises FrameReadError like a bad store."""

    options: FrameOptions

    def __call__(self, record: VideoRecord, indices: Sequence[int]) -> np.ndarray:
        try:
            return read_clip(record.path, indices, record.start, record.end, self.options, record.n_frames)
        except VideoDecodeError as exc:
            raise FrameReadError(str(exc)) from None


class ViewDataset(torch.utils.data.Dataset):
    """Record ``i`` → ``(i, views (V, 3, T, S, S) float32 or None, error message or None)``; ``reader(record,
    indices)`` gives the frames (`read_stored` or a `VideoFileReader`). With ``unique`` the views are
    ``(distinct views (U, 3, T, S, S), inverse (V,))`` (`evaluation.views.unique_views`)."""

    def __init__(self, records: Sequence[VideoRecord], cfg: ViewConfig, mean: Sequence[float], std: Sequence[float],
                 channel_order: str = "BGR", reader: Callable[[VideoRecord, Sequence[int]], np.ndarray] = read_stored,
                 unique: bool = False):
        self.records, self.cfg, self.mean, self.std = list(records), cfg, list(mean), list(std)
        self.channel_order, self.reader, self.unique = channel_order, reader, unique

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        record = self.records[i]
        clips = self.cfg.frame_indices(record.n_frames)
        try:
            frames = self.reader(record, [j for clip in clips for j in clip])
        except FrameReadError as exc:
            return i, None, str(exc)
        if self.unique:
            return i, unique_views(frames, self.cfg, self.mean, self.std, self.channel_order, clips), None
        return i, make_views(frames, self.cfg, self.mean, self.std, self.channel_order), None


@dataclass
class ViewScores:
    """Per-video results over the whole split: ``probs`` (N, K) mean view probabilities, ``clip_hits``
    (N, 2) views with the label in the top-1 / top-5, ``views`` (N,) scored views (0 = failed or non-finite),
    ``nonfinite`` (N,) views with a NaN/inf output (the video is then not scored), ``computed`` distinct views
    run through the model (of ``views.sum()`` + failed ones)."""

    probs: torch.Tensor
    clip_hits: torch.Tensor
    views: torch.Tensor
    labels: torch.Tensor
    errors: list[str]
    nonfinite: torch.Tensor | None = None
    computed: int = 0


def score_videos(model: nn.Module, records: Sequence[VideoRecord], cfg: ViewConfig, mean: Sequence[float],
                 std: Sequence[float], num_classes: int, device: torch.device, batch_size: int = 16,
                 workers: int = 0, progress_every: int = 50, channel_order: str = "BGR",
                 reader: Callable[[VideoRecord, Sequence[int]], np.ndarray] = read_stored) -> ViewScores:
    """Score this rank's shard of ``records`` and sum the results over ranks (see the module doc); ``mean``,
    ``std`` and ``channel_order``: the model's input convention; ``reader``: where the frames come from."""
    rank, world = dist.get_rank(), dist.get_world_size()
    shard = list(range(rank, len(records), world))
    dataset = torch.utils.data.Subset(ViewDataset(records, cfg, mean, std, channel_order, reader, unique=True), shard)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                         persistent_workers=False)
    n = len(records)
    probs = torch.zeros(n, num_classes, dtype=torch.float64)
    stats = torch.zeros(n, 5, dtype=torch.float64)  # top-1 hits, top-5 hits, scored views, non-finite, computed
    labels = torch.tensor([r.class_index for r in records], dtype=torch.long)
    errors: list[str] = []
    model.eval()
    for done, (i, views, error) in enumerate(loader, start=1):
        if views is None:
            logger.warning("skipped %s", error)
            errors.append(str(error))
            continue
        distinct, inverse = views
        p = view_probabilities(model, distinct, batch_size, device).double()[inverse]
        bad = int((~torch.isfinite(p).all(dim=1)).sum())
        if bad:  # never ranked: topk puts NaN first
            stats[i, 3:] = torch.tensor([bad, distinct.shape[0]], dtype=torch.float64)
            continue
        top = p.topk(min(5, num_classes), dim=1).indices
        hits = top == labels[i]
        probs[i] = p.mean(dim=0)
        stats[i] = torch.tensor([hits[:, 0].sum(), hits.any(dim=1).sum(), p.shape[0], 0, distinct.shape[0]],
                                dtype=torch.float64)
        if progress_every and done % progress_every == 0:
            logger.info("rank %d: %d/%d videos scored", rank, done, len(shard))
    probs, stats = dist.all_reduce_sum(probs), dist.all_reduce_sum(stats)
    failed = int(dist.all_reduce_sum(torch.tensor([float(len(errors))]))[0])
    if failed > len(errors):
        errors.append(f"{failed - len(errors)} more on other ranks (see their log lines)")
    return ViewScores(probs, stats[:, :2], stats[:, 2], labels, errors, stats[:, 3], int(stats[:, 4].sum()))


def summarise(scores: ViewScores, class_names: Sequence[str]) -> dict[str, Any]:
    """Clip- and video-level top-1/top-5, per-class accuracy and the confusion matrix (rows: true class);
    ``valid`` is False when a video gave non-finite outputs (counted in ``nonfinite_videos``, scored nowhere)."""
    nonfinite = scores.nonfinite if scores.nonfinite is not None else torch.zeros_like(scores.views)
    ok = scores.views > 0
    k = scores.probs.shape[1]
    probs, labels = scores.probs[ok], scores.labels[ok]
    top = probs.topk(min(5, k), dim=1).indices
    video_top1 = (top[:, 0] == labels).double()
    video_top5 = (top == labels[:, None]).any(dim=1).double()
    total_views = float(scores.views.sum())
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels.numpy(), top[:, 0].numpy()), 1)
    per_class = {}
    for c in range(k):
        n = int(confusion[c].sum())
        if n:
            per_class[class_names[c]] = {"index": c, "videos": n, "top1": float(confusion[c, c] / n)}
    mean = lambda x: float(x.mean()) if len(x) else float("nan")  # noqa: E731
    return {
        "videos": int(ok.sum()), "failed": int(((~ok) & (nonfinite == 0)).sum()), "views": int(total_views),
        "nonfinite_videos": int((nonfinite > 0).sum()), "nonfinite_views": int(nonfinite.sum()),
        "valid": not bool((nonfinite > 0).any()), "views_computed": int(scores.computed),
        "clip_top1": float(scores.clip_hits[:, 0].sum() / total_views) if total_views else float("nan"),
        "clip_top5": float(scores.clip_hits[:, 1].sum() / total_views) if total_views else float("nan"),
        "video_top1": mean(video_top1), "video_top5": mean(video_top5),
        "mean_class_top1": float(np.mean([v["top1"] for v in per_class.values()])) if per_class else float("nan"),
        "per_class": per_class, "confusion": confusion,
    }


def write_predictions(scores: ViewScores, records: Sequence[VideoRecord], class_names: Sequence[str],
                      out: str | Path) -> Path:
    """One CSV row per video: id, true label, predicted label, its probability, scored views."""
    out = Path(out)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_id", "label", "prediction", "probability", "views", "path"])
        for record, p, v in zip(records, scores.probs, scores.views):
            if v > 0:
                best = int(p.argmax())
                writer.writerow([record.video_id, record.label, class_names[best], f"{float(p[best]):.6f}", int(v),
                                 record.path])
            else:
                writer.writerow([record.video_id, record.label, "", "", 0, record.path])
    return out
