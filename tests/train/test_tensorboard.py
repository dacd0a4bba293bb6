"""train.monitor.tensorboard: scalars land in real event files; without the package it is a warned no-op."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from train.monitor.tensorboard import TensorboardLogger

REPO = Path(__file__).resolve().parents[2]


def test_scalars_are_written(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    board = TensorboardLogger(tmp_path)
    assert board.enabled
    board.log_scalars(1, {"loss": 2.5, "top1": 0.25, "lr": None}, prefix="train")
    board.log_scalars(2, {"loss": 1.5, "top1": 0.5}, prefix="train")
    board.close()
    board.close()
    acc = event_accumulator.EventAccumulator(str(tmp_path))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"train/loss", "train/top1"}
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(1, 2.5), (2, 1.5)]


def test_missing_package_is_a_no_op_with_one_warning(tmp_path):
    # a None entry in sys.modules makes the import fail exactly as when the package is not installed
    code = ("import sys; sys.modules['torch.utils.tensorboard'] = None\n"
            "import logging; logging.basicConfig()\n"
            "from train.monitor.tensorboard import TensorboardLogger\n"
            f"b = TensorboardLogger({str(tmp_path)!r}); b.log_scalars(1, {{'loss': 1.0}}, 'train'); b.close()\n"
            "print(b.enabled)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False"
    assert proc.stderr.count("WARNING") == 1 and "pip install tensorboard" in proc.stderr
    assert not list(tmp_path.iterdir())
