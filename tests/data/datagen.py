"""Test data helpers for tests/data (importable by basename: `from datagen import gradient_frames`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.store.video_io import write_video_file


def gradient_frames(n: int, width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """``(n, H, W, 3)`` BGR frames: a smooth random gradient plus a bright bar at x = 2·i (so order is visible)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 200 + rng.uniform(0, 50), yy / height * 200 + rng.uniform(0, 50),
                     np.full_like(xx, rng.uniform(50, 200))], -1)
    frames = np.repeat(base[None], n, 0)
    for i in range(n):
        x = (2 * i) % (width - 4)
        frames[i, :, x:x + 4] = 255
    return frames.astype(np.uint8)


def write_clip(path: Path, frames: int = 8, width: int = 32, height: int = 24, fps: float = 10, seed: int = 0,
               rotation: int = 0) -> np.ndarray:
    """Write a tiny real video with the project's writer (codec from the extension); returns the frames written."""
    clip = gradient_frames(frames, width, height, seed)
    write_video_file(path, clip, fps=fps, rotation=rotation)
    return clip
