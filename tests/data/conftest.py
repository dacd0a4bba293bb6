"""Data fixtures shared by the tests in tests/data (real SQLite files and real encoded video files)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from datagen import gradient_frames

from data.catalog.spec import DatasetPaths
from data.prep.synthetic import generate
from data.store.video_io import write_video_file


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> DatasetPaths:
    """A very small synthetic set: 8 classes × 2 clips (1 train, 1 val) of 16 frames at 32 px. Do not modify."""
    return generate(tmp_path_factory.mktemp("tiny_synthetic"), num_classes=8, videos_per_class=2, frames=16,
                    size=32, val_fraction=0.5, seed=0)


@pytest.fixture
def video_file_factory(tmp_path) -> Callable[..., tuple[Path, np.ndarray]]:
    """``make(name='v.mp4', frames=20, width=64, height=48, fps=25, seed=0) -> (path, frames written)``.

    ``name`` may contain folders (``'src/cls/vid.avi'``); the codec follows the extension (see write_video_file).
    """
    def make(name: str = "v.mp4", frames: int = 20, width: int = 64, height: int = 48, fps: float = 25,
             seed: int = 0) -> tuple[Path, np.ndarray]:
        path = tmp_path / name
        clip = gradient_frames(frames, width, height, seed)
        write_video_file(path, clip, fps=fps)
        return path, clip
    return make
