"""train/engine/trainer.py end to end on the tiny network, in this process: a validation epoch whose outputs are NaN
is reported as invalid (CSV ``nan`` with the count, a WARNING) and never becomes ``_best``."""
from __future__ import annotations

import csv

import pytest
import torch
from engine_helpers import TINY, TinyNet, dataset_for, load_script, tiny_args, tiny_network

from train.engine.run import run
from train.results.checkpoint import best_path, load_checkpoint_file

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
