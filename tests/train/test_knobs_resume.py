"""Every training knob together (AdamW without decay on 1-D tensors, label smoothing, mixup + cutmix,
accumulation, clipping, --sync-bn, EMA) on the tiny network: a real SIGTERM in the middle of epoch 2, then
``--resume-epoch auto``, gives the uninterrupted run's weights, EMA weights and optimiser state bit for bit; the
validation CSV gains EmaTop1; a resume with another --optimizer is refused in one line."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from engine_helpers import TINY, dataset_for, finish_child, start_child, tiny_args, wait_for

from data.prep.synthetic import SYNTHETIC_SPEC
from train.config import RunConfig
from train.results.checkpoint import EMA_KEY, load_checkpoint_file
from train.results.preempt import REQUEUE_EXIT

pytestmark = pytest.mark.slow

FOLDER = f"{TINY}_gates_False"
KNOBS = ["--train-frame-interval", "1", "--clip-length", "3", "--end-epoch", "3", "--optimizer", "adamw",
         "--lr-base", "0.003", "--weight-decay", "0.05", "--no-decay-norm-bias", "--label-smoothing", "0.1",
         "--mixup-alpha", "0.8", "--cutmix-alpha", "1.0", "--mix-prob", "0.8", "--accumulate-grad", "2",
         "--clip-grad-norm", "1.0", "--sync-bn", "--ema-decay", "0.9"]


def _start(model_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return start_child(tiny_args(dataset_for(SYNTHETIC_SPEC), model_dir, *KNOBS, *extra), env)


def _run(model_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return finish_child(_start(model_dir, *extra))


def _same(a: dict, b: dict) -> list[str]:
    """Keys whose tensors differ (nested dicts and lists compared leaf by leaf)."""
    if isinstance(a, torch.Tensor):
        return [] if torch.equal(a, b) else ["<tensor>"]
    if isinstance(a, dict):
        return [f"{k}.{d}" for k in a for d in _same(a[k], b[k])] if a.keys() == b.keys() else ["<keys>"]
    if isinstance(a, (list, tuple)):
        return [f"[{i}].{d}" for i, (x, y) in enumerate(zip(a, b)) for d in _same(x, y)]
    return [] if a == b else [repr(a)]


def test_all_knobs_train_and_resume_exactly(tmp_path):
    straight = _run(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]

    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _start(tmp_path / "cut", env={"TEST_MARK_DIR": str(marks), "TEST_MARK_AT": "1:1"})
    wait_for(marks / "rank0", proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == REQUEUE_EXIT, err[-3000:]
    cut = tmp_path / "cut" / FOLDER
    last = load_checkpoint_file(cut / f"{TINY}_last.pth")
    assert last["epoch"] == 1 and last["position"]["iteration"] == 2 and EMA_KEY in last  # one optimiser step in

    resumed = _run(tmp_path / "cut", "--resume-epoch", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_checkpoint_file(tmp_path / "straight" / FOLDER / f"{TINY}_ep-0003.pth")
    b = load_checkpoint_file(cut / f"{TINY}_ep-0003.pth")
    for key in ("state_dict", EMA_KEY, "optimizer"):
        assert not _same(a[key], b[key]), (key, _same(a[key], b[key]))
    assert any(not torch.equal(a["state_dict"][k], a[EMA_KEY][k]) for k in a["state_dict"])  # a real average
    assert "betas" in a["optimizer"]["param_groups"][0]
    assert {g["weight_decay"] for g in a["optimizer"]["param_groups"]} == {0.05, 0.0}
    saved = RunConfig.from_saved(a)
    assert (saved.optim.optimizer, saved.reg.mixup_alpha, saved.optim.ema_decay, saved.hardware.sync_bn) == \
        ("adamw", 0.8, 0.9, True)

    with open(cut / "val_results_s0001.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Epoch"] for r in rows] == ["2", "3"] and all(0 <= float(r["EmaTop1"]) <= 1 for r in rows)
    log_text = (cut / "train.log").read_text()
    assert "--sync-bn is ignored: a single process" in log_text
    assert "resumed from" in log_text.split("Resumed")[-1]

    other = _run(tmp_path / "cut", "--resume-epoch", "auto", "--optimizer", "sgd", "--end-epoch", "4")
    errors = [ln for ln in other.stderr.splitlines() if " ERROR " in ln or ln.startswith("error:")]
    assert other.returncode == 1 and len(errors) == 1, other.stderr[-3000:]
    assert "written by --optimizer adamw, but this run uses --optimizer sgd; resume with --optimizer adamw" in errors[0]

    changed = _run(tmp_path / "cut", "--resume-epoch", "auto", "--mixup-alpha", "0.2", "--end-epoch", "4")
    assert changed.returncode == 0, changed.stderr[-3000:]
    warning = [ln for ln in (cut / "train.log").read_text().splitlines() if "resumed with" in ln]
    assert len(warning) == 1 and f"{TINY}_ep-0003.pth: resumed with --mixup-alpha 0.2 (was 0.8); the run " \
        "continues with this command line's values" in warning[0]
