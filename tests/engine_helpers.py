"""Shared pieces of the training-engine tests: a tiny registered network, tiny data sets, script loading.

The tiny network (``tiny_test_net``, ~5k parameters) keeps each training run well under a second; it is
registered only inside :func:`tiny_network` (and in the DDP child script), then removed again, so tests that
enumerate ``network.list_models()`` never see it. The tiny synthetic set is generated once per session.
"""
from __future__ import annotations

import atexit
import contextlib
import csv
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import torch
import torch.nn as nn

from data.catalog.datasets import get_dataset, list_datasets
from data.catalog.spec import DatasetSpec
from data.store.frames_db import connect_readonly, read_blobs, read_n_frames, write_video
from network import registry

ROOT = Path(__file__).resolve().parents[1]
# Every registered data set's train_<dataset>.py (enumerated from the registry, not written out here).
SCRIPTS = tuple(sorted(Path(get_dataset(name).script).stem for name in list_datasets()))
TINY = "tiny_test_net"
# CLI arguments of a tiny run: 4 frames of 32², batch 2, no workers, logging every step.
TINY_ARGS = ["--network", TINY, "--clip-length", "4", "--clip-size", "32", "--val-clip-length", "4",
             "--val-clip-size", "32", "--batch-size", "2", "--workers", "0", "--long-cycles", "False",
             "--short-cycles", "False", "--train-frame-interval", "1", "--val-frame-interval", "1",
             "--log-interval", "1", "--lr-base", "0.01", "--lr-steps", "50", "--device", "cpu"]


class TinyNet(nn.Module):
    """``(B, 3, T, H, W) -> (B, num_classes)``: two strided 3D convs with BN, global pooling, ``fc``."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 8, 3, stride=(1, 2, 2), padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU(inplace=True),
            nn.Conv3d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm3d(16), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def tiny_test_net(num_classes: int = 400, **_: object) -> nn.Module:
    """Builder registered as ``tiny_test_net``."""
    return TinyNet(num_classes)


def register_tiny() -> None:
    """Register ``tiny_test_net`` if it is not registered yet (idempotent)."""
    if TINY not in registry.list_models():
        registry.register_model(tiny_test_net)


@contextlib.contextmanager
def tiny_network() -> Iterator[str]:
    """``tiny_test_net`` registered for the duration of the block."""
    added = TINY not in registry.list_models()
    register_tiny()
    try:
        yield TINY
    finally:
        if added:
            registry._MODELS.pop(TINY, None)  # test-only model: leave the registry as we found it


_TMP = Path(tempfile.mkdtemp(prefix="engine-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


@lru_cache(maxsize=1)
def synthetic_root() -> Path:
    """A tiny synthetic set (4 classes × 3 clips of 8 frames, 32²; 2 train + 1 val per class), made once."""
    from data.prep.synthetic import generate

    out = _TMP / "synthetic"
    generate(out, num_classes=4, videos_per_class=3, frames=8, size=32, val_fraction=1 / 3)
    return out


def dataset_for(spec: DatasetSpec) -> Path:
    """The tiny synthetic clips laid out as ``spec`` expects (folder, CSV names, time-sliced dir names).

    Returns the value to pass as ``--dataset`` (the original form ``<root>/data/<folder>/``).
    """
    root = _TMP / f"layout-{spec.name}"
    if not root.exists():
        src_root = synthetic_root()
        src_jpg = src_root / "data" / "Synthetic_videos" / "jpg"
        labels = root / "labels"
        labels.mkdir(parents=True)
        for split in ("train", "val"):
            with open(src_root / "labels" / f"synthetic_{split}.csv", newline="") as fh:
                rows = list(csv.DictReader(fh))
            csv_name = spec.train_csv if split == "train" else spec.val_csv
            with open(labels / csv_name, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
                for i, row in enumerate(rows):
                    start, end = (float(i), float(i) + 2.5)
                    name = row["id"] + (f"_{int(start):06d}_{int(end):06d}" if spec.timeslices else "")
                    src = src_jpg / row["label"] / row["id"]
                    con = connect_readonly(src / "frames.db")
                    try:
                        blobs = read_blobs(con, src, range(read_n_frames(src)))
                    finally:
                        con.close()
                    write_video(root / "data" / spec.folder / "jpg" / row["label"] / name, blobs)
                    writer.writerow([row["label"], row["id"], start, end, split])
    return root / "data" / spec.folder


def load_script(name: str) -> ModuleType:
    """Import ``<repo>/<name>.py`` as a module (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_args(dataset: Path | str, model_dir: Path | str, *extra: str) -> list[str]:
    """:data:`TINY_ARGS` for ``dataset`` with results under ``model_dir``, plus ``extra``."""
    return ["--dataset", str(dataset), "--model-dir", str(model_dir), *TINY_ARGS, *extra]


CHILD = ROOT / "tests" / "train" / "ddp_main.py"  # a training run in its own process (real signals, real exits)


def start_child(args: list[str], env: dict | None = None) -> subprocess.Popen:
    """Start :data:`CHILD` with the training ``args`` (text pipes; ``env`` added to this process's)."""
    return subprocess.Popen([sys.executable, str(CHILD), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def finish_child(proc: subprocess.Popen, timeout: float = 240) -> subprocess.CompletedProcess:
    """Wait for a :func:`start_child` process; its exit code and output."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until ``path`` exists (a child's mark file); fails with the child's stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# Every call that makes the host wait for a device value (on CPU: would, on CUDA).
SYNCING = {torch.Tensor: ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"),
           torch.cuda: ("synchronize",), torch.cuda.Event: ("synchronize", "elapsed_time")}


def count_syncs(monkeypatch) -> list[str]:
    """Wrap every :data:`SYNCING` call (through ``monkeypatch``, undone with it); returns the list of the names
    called, in order, filled as the code under test runs."""
    calls: list[str] = []
    for owner, names in SYNCING.items():
        for name in names:
            original = getattr(owner, name)

            def counted(*args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(*args, **kwargs)
            monkeypatch.setattr(owner, name, counted)
    return calls
