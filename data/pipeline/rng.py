"""Every random stream of a run in one table, and the helpers that seed them.

A stream's numbers are a function of ``(--random-seed, stream id, rank, epoch, ...)`` only, so a run, a
resumed run and every DataLoader worker draw reproducible and distinct sequences. Changing an id changes
every draw of that stream (and breaks bit-identical resumes of older runs): add new ids, never renumber.
"""
from __future__ import annotations

import random

import numpy as np
import torch

STREAMS: dict[str, int] = {
    "loader": 0,        # the train DataLoader's generator (worker seeds), per (rank, epoch)
    "sampler": 1,       # temporal windows of training clips (data.pipeline.video_sampler.RandomSampling)
    "transform": 2,     # augmentation parameters (data.pipeline.video_transforms)
    "val_window": 2,    # the fixed validation window of each video (SequentialSampling; another construction)
    "replacement": 3,   # which video replaces an unreadable one (data.pipeline.video_iterator)
    "mixing": 4,        # mixup/cutmix draws of each training step, per (rank, epoch, step) (train.engine.targets)
    "process": 1000,    # global torch/numpy/python seeds: --random-seed + 1000 * rank after model init
}


def mix(*values: int) -> int:
    """A 63-bit seed from several ints (stable across processes, unlike ``hash``)."""
    return int(np.random.SeedSequence([v % 2**32 for v in values]).generate_state(2, np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
