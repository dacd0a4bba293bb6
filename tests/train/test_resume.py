"""Runs that survive a cluster, end to end on the tiny network: a real SIGTERM in the middle of epoch 2, then
``--resume-epoch auto``, gives the weights and the epoch's row of an uninterrupted run (``--workers 0`` and ``2``,
and between the micro-batches of ``--accumulate-grad 2``); a re-run into
a used folder is refused; ``--overwrite`` moves the earlier run aside; another ``--batch-size`` keeps the lr."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from engine_helpers import TINY, dataset_for, finish_child, start_child, tiny_args, wait_for

from data.prep.synthetic import SYNTHETIC_SPEC
from train.results.checkpoint import load_checkpoint_file
from train.results.preempt import REQUEUE_EXIT

FOLDER = f"{TINY}_gates_False"
# 8-frame videos, 3-frame clips at interval 1: random start frames, so the sampling streams matter
RANDOM = ["--train-frame-interval", "1", "--clip-length", "3", "--end-epoch", "3"]


def _start(model_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return start_child(tiny_args(dataset_for(SYNTHETIC_SPEC), model_dir, *RANDOM, *extra), env)


def _run(model_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return finish_child(_start(model_dir, *extra))


def _weights(path: Path) -> dict:
    return load_checkpoint_file(path)["state_dict"]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run (workers 0)."""
    out = tmp_path_factory.mktemp("straight")
    result = _run(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / FOLDER


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_sigterm_mid_epoch_then_auto_resume_is_bit_identical(straight, tmp_path, workers):
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _start(tmp_path, "--workers", workers, env={"TEST_MARK_DIR": str(marks), "TEST_MARK_AT": "1:1"})
    wait_for(marks / "rank0", proc)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == REQUEUE_EXIT, err[-3000:]
    out = tmp_path / FOLDER
    last = load_checkpoint_file(out / f"{TINY}_last.pth")
    assert last["epoch"] == 1 and 2 <= last["position"]["iteration"] < 4, last.get("position")
    assert (out / "latest").read_text().strip() == f"{TINY}_last.pth"
    assert not (out / "run.lock").exists() and not [p for p in os.listdir(out) if ".tmp-" in p]
    log_text = (out / "train.log").read_text()
    assert "SIGTERM: stopped at epoch 2, after step" in log_text
    print(f"SIGTERM to exit: {took:.2f} s (workers {workers}); mid-epoch checkpoint "
          f"{(out / f'{TINY}_last.pth').stat().st_size} bytes")

    resumed = _run(tmp_path, "--workers", workers, "--resume-epoch", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(straight / f"{TINY}_ep-0003.pth"), _weights(out / f"{TINY}_ep-0003.pth")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    # the resumed epoch's row covers the whole epoch (the mid-epoch checkpoint carries the sums of its first
    # steps): the same samples, loss and accuracy as the uninterrupted run's row for epoch 2
    rows = _rows(out / "train_results_s0001.csv")
    assert [r["Epoch"] for r in rows] == ["2", "3"]
    assert _same_row(rows[0], _rows(straight / "train_results_s0000.csv")[1]) and int(rows[0]["Samples"]) == 8
    assert "iteration" in (out / "train.log").read_text().split("Resumed")[-1].splitlines()[0]
    assert "Epoch [2]  (train)" in resumed.stderr.split("Resumed")[-1] and "(8 clips, 0 skipped)" in resumed.stderr


def _same_row(a: dict, b: dict) -> bool:
    """Two CSV rows of one epoch agree in everything but the time."""
    return {k: v for k, v in a.items() if k != "Seconds"} == {k: v for k, v in b.items() if k != "Seconds"}


@pytest.mark.slow
def test_sigterm_between_micro_batches_finishes_the_optimiser_step_then_resumes_bit_identical(tmp_path):
    """--accumulate-grad 2: a signal after the first micro-batch of a step stops after the second (the summed
    gradients are not saved), and the resumed run ends with the uninterrupted run's weights and rows."""
    straight = tmp_path / "straight"
    assert _run(straight, "--accumulate-grad", "2").returncode == 0
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _start(tmp_path, "--accumulate-grad", "2", env={"TEST_MARK_DIR": str(marks), "TEST_MARK_AT": "1:0"})
    wait_for(marks / "rank0", proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == REQUEUE_EXIT, err[-3000:]
    out = tmp_path / FOLDER
    stopped = load_checkpoint_file(out / f"{TINY}_last.pth")["position"]["iteration"]
    assert stopped in (2, 4) and "SIGTERM: stopped at epoch 2, after step 2 of 4" in (out / "train.log").read_text()
    resumed = _run(tmp_path, "--accumulate-grad", "2", "--resume-epoch", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(straight / FOLDER / f"{TINY}_ep-0003.pth"), _weights(out / f"{TINY}_ep-0003.pth")
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    full = _rows(straight / FOLDER / "train_results_s0000.csv")
    assert all(_same_row(x, y) for x, y in zip(_rows(out / "train_results_s0001.csv"), full[1:]))


@pytest.mark.slow
def test_rerun_refused_and_first_run_untouched(straight, tmp_path):
    first = tmp_path / "first"
    assert _run(first, "--end-epoch", "1").returncode == 0
    folder = first / FOLDER
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    again = _run(first, "--end-epoch", "1")
    assert again.returncode == 1
    lines = [ln for ln in again.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--resume-epoch auto" in lines[0] and "--overwrite" in lines[0], again.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    # --overwrite moves the earlier run aside, it deletes nothing
    over = _run(first, "--end-epoch", "1", "--overwrite", "True")
    assert over.returncode == 0, over.stderr[-3000:]
    aside = [p for p in folder.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and (aside[0] / f"{TINY}_ep-0001.pth").read_bytes() == before[f"{TINY}_ep-0001.pth"]
    assert "--overwrite: moved" in (folder / "train.log").read_text()


@pytest.mark.slow
def test_run_name_gives_a_sweep_its_own_folder(tmp_path):
    result = _run(tmp_path, "--end-epoch", "1", "--run-name", "lr0.01")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / f"{FOLDER}_lr0.01" / f"{TINY}_ep-0001.pth").is_file()


@pytest.mark.slow
def test_resume_with_other_batch_size_keeps_lr_of_every_epoch(tmp_path):
    steps = ["--lr-steps", "2", "--lr-factor", "0.1", "--lr-base", "0.02"]
    assert _run(tmp_path, "--end-epoch", "1", *steps).returncode == 0
    resumed = _run(tmp_path, "--end-epoch", "3", "--resume-epoch", "auto", "--batch-size", "4", *steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = tmp_path / FOLDER
    lrs = {r["Epoch"]: float(r["LR"]) for name in ("train_results_s0000.csv", "train_results_s0001.csv")
           for r in _rows(out / name)}
    assert lrs == pytest.approx({"1": 0.02, "2": 0.02, "3": 0.002})
