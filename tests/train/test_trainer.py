"""train/engine/trainer.py end to end on the tiny network, in this process: a validation epoch whose outputs are NaN
is reported as invalid (CSV ``nan`` with the count, a WARNING) and never becomes ``_best``; DDP with gradient
accumulation and clipping; the preemption question asked only between optimiser steps."""
from __future__ import annotations

import csv

import pytest
import torch
from engine_helpers import TINY, TinyNet, dataset_for, load_script, tiny_args, tiny_network

from train.engine.run import run
from train.results.checkpoint import best_path, load_checkpoint_file
from train.results.preempt import Preemption

FOLDER = f"{TINY}_gates_False"


@pytest.fixture(scope="module")
def spec_and_data():
    spec = load_script("train_synthetic").SPEC
    with tiny_network():
        yield spec, dataset_for(spec)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_a_validation_epoch_of_nan_outputs_is_invalid_and_never_best(spec_and_data, tmp_path, monkeypatch, caplog):
    spec, data = spec_and_data
    forward, trained = TinyNet.forward, []

    def nan_in_second_validation(self, x):  # the network breaks after epoch 2's training (4 steps per epoch)
        trained.extend([1] if self.training else [])
        out = forward(self, x)
        return out if self.training or len(trained) < 8 else torch.full_like(out, float("nan"))

    monkeypatch.setattr(TinyNet, "forward", nan_in_second_validation)
    with caplog.at_level("WARNING"):
        summary = run(spec, tiny_args(data, tmp_path, "--end-epoch", "2"))
    out = tmp_path / FOLDER
    val = _rows(out / "val_results_s0000.csv")
    assert [r["NonFinite"] for r in val] == ["0", "4"] and val[1]["Top1"] == "nan" and val[1]["Top5"] == "nan"
    assert val[1]["Samples"] == "0" and float(val[0]["Top1"]) >= 0
    best = load_checkpoint_file(best_path(out, TINY))
    assert best["epoch"] == 1 and summary["best_val_top1"] == pytest.approx(float(val[0]["Top1"]))
    warned = [r.getMessage() for r in caplog.records if "non-finite outputs" in r.getMessage()]
    assert warned == ["Epoch [2] (val): 4 clip(s) gave non-finite outputs (NaN/inf): not scored, top-1 and top-5 "
                      "are invalid (NaN); this epoch cannot become _best"]


@pytest.mark.slow
def test_two_process_gloo_training_with_accumulation_and_clipping(tmp_path):
    """DDP with --accumulate-grad 2 (no_sync on the first micro-batch) and --clip-grad-norm: the epoch trains every
    clip once over both ranks; the speed lines (--log-interval 1) come at the optimiser steps, with the norm."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from engine_helpers import ROOT  # noqa: PLC0415

    from data.prep.synthetic import SYNTHETIC_SPEC  # noqa: PLC0415

    args = tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "1", "--gpus", "2", "--batch-size", "2",
                     "--accumulate-grad", "2", "--clip-grad-norm", "1.0")
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("ddp_main.py")), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / FOLDER
    assert int(_rows(out / "train_results_s0000.csv")[0]["Samples"]) == 8
    lines = [ln for ln in (out / "train.log").read_text().splitlines() if "Speed (" in ln and "(val)" not in ln]
    assert ["Batch [2]" in lines[0], "Batch [4]" in lines[1]] == [True, True] and len(lines) == 2
    assert all(", grad_norm = " in ln and "loss-ce = nan" not in ln for ln in lines)



class _Batches:
    """Seven batches, as a DataLoader of a data set that counts nothing."""

    dataset = None

    def __iter__(self):
        return iter(range(7))

    def __len__(self):
        return 7


def test_the_stop_question_is_asked_only_between_optimiser_steps():
    """WatchedLoader(every=2), resumed at step 3: a signal (or a periodic save) is acted on before the first step
    and before the steps at multiples of 2, never between the two batches of one optimiser step."""
    guard, trained, asked = Preemption(), [], []

    def poll():
        asked.append(3 + len(trained))
        return asked[-1] == 6, False  # the signal is seen before step 6

    guard.poll = poll
    watched = guard.watch(_Batches(), start=3, save=lambda steps: None, every=2)
    trained.extend(b for b in watched)
    assert asked == [3, 4, 6] and trained == [0, 1, 2] and watched.stopped_at == 6
