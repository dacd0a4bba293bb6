"""Test helper for the evaluation/prediction tests: a tiny colour-coded data set and a briefly trained model.

Classes differ by the dominant colour of the frames (in BGR order), so a model learns them in a few steps and a
channel-order or normalisation mismatch between training and evaluation shows up as wrong classes.
"""
from __future__ import annotations

import csv
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import torch

from data.pipeline.loaders import LoaderConfig, build_loaders
from data.prep.synthetic import SYNTHETIC_SPEC
from data.store.frames_db import write_video
from data.store.video_io import write_video_file
from network import create_model
from network.config import get_config
from train.config import RunConfig
from train.results.checkpoint import checkpoint_path, save_checkpoint

# BGR base colours; red and blue are mirror images, so swapping channels confuses exactly those two.
COLOURS = {"red": (40, 50, 210), "green": (50, 200, 60), "blue": (210, 60, 40)}
NETWORK = "r3d_18"
CLIP_LENGTH, CLIP_SIZE = 4, 32


def colour_clip(label: str, rng: np.random.Generator, frames: int = 8, size: tuple[int, int] = (36, 48)) -> np.ndarray:
    """``(T, H, W, 3)`` BGR uint8: the class colour with texture noise and a moving grey square."""
    base = np.array(COLOURS[label], dtype=np.float32)
    h, w = size
    clip = np.empty((frames, h, w, 3), dtype=np.float32)
    clip[:] = base * rng.uniform(0.7, 1.1)
    clip += rng.normal(0, 25, clip.shape).astype(np.float32)
    side = h // 4
    x, y = rng.integers(0, w - side), rng.integers(0, h - side)
    for t in range(frames):
        xt = (x + 2 * t) % (w - side)
        clip[t, y:y + side, xt:xt + side] = 128
    return np.clip(clip, 0, 255).astype(np.uint8)


def write_colour_set(root: Path, videos_per_class: int = 6, val_per_class: int = 3, frames: int = 8,
                     size: tuple[int, int] = (36, 48), seed: int = 0, videos_dir: Path | None = None) -> Path:
    """Write the set in the synthetic data set's layout under ``root`` (so ``--spec synthetic`` finds it)."""
    jpg = root / "data" / SYNTHETIC_SPEC.folder / "jpg"
    labels = root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = {"train": [], "val": []}
    for label in COLOURS:
        for v in range(videos_per_class + val_per_class):
            vid = f"{label}_{v:03d}"
            clip = colour_clip(label, rng, frames, size)
            write_video(jpg / label / vid, list(clip), quality=95)
            if videos_dir is not None:
                write_video_file(videos_dir / f"{vid}.mp4", clip, fps=25)
            rows["train" if v < videos_per_class else "val"].append((label, vid))
    for split, items in rows.items():
        with open(labels / f"synthetic_{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["label", "id"])
            writer.writerows(items)
    return root


def fit_head(model: torch.nn.Module, loaders, epochs: int, steps: int = 100) -> None:
    """Train ``model.fc`` (logistic regression, Adam) on the features of ``epochs`` passes over the train loader.

    The backbone stays in eval mode and frozen, so training sees exactly the features evaluation computes (a
    few SGD steps of the whole network leave BatchNorm running statistics far from the batch statistics).
    Features are centred and divided by one global scale for the fit (per-dimension scaling amplifies noise
    dimensions); the scaling is folded into ``fc``.
    """
    feats, labels = [], []
    model.eval()
    with torch.no_grad():
        for epoch in range(epochs):
            loaders.set_epoch(epoch)
            for clips, y in loaders.train:
                feats.append(model.forward_features(clips))
                labels.append(y)
    x, y = torch.cat(feats).double(), torch.cat(labels)
    mu, scale = x.mean(0), float(x.std())
    z = ((x - mu) / scale).float()
    torch.manual_seed(0)
    head = torch.nn.Linear(z.shape[1], model.fc.out_features)
    opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(z), y).backward()
        opt.step()
    with torch.no_grad():
        w = head.weight.double() / scale
        model.fc.weight.copy_(w.float())
        model.fc.bias.copy_((head.bias.double() - w @ mu).float())


@cache
def trained_checkpoint(base: Path) -> Path:
    """A checkpoint (engine format, engine results folder) of ``r3d_18`` whose head was trained on a colour set
    written under ``base`` through the training data loaders; videos of that set are in ``base/videos``."""
    root = write_colour_set(base / "colours", videos_dir=base / "videos")
    spec = replace(SYNTHETIC_SPEC, num_classes=len(COLOURS))
    paths = spec.resolve(root)
    norm = get_config(NETWORK)
    cfg = LoaderConfig(clip_length=CLIP_LENGTH, clip_size=CLIP_SIZE, batch_size=6, train_frame_interval=1,
                       val_frame_interval=1, long_cycles=False, short_cycles=False, workers=0, seed=0,
                       persistent_workers=False)
    loaders = build_loaders(spec, paths, cfg, norm["mean"], norm["std"])
    torch.manual_seed(0)
    model = create_model(NETWORK, num_classes=len(COLOURS))
    fit_head(model, loaders, epochs=2)
    config = RunConfig.from_flat({"network": NETWORK, "dataset": str(root), "clip_length": CLIP_LENGTH,
                                  "clip_size": CLIP_SIZE, "val_frame_interval": 1}, spec.name)
    out = checkpoint_path(base / "results" / spec.name / f"{NETWORK}_gates_False", NETWORK, 1)
    return save_checkpoint(out, model, 1, network=NETWORK, classes=loaders.classes, config=config.to_dict(),
                           dataset=spec.to_dict())
