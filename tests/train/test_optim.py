"""train/optim.py: parameter groups by module type (fine-tune rules), SGD settings, per-group lr."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from network.registry import create_model
from train.optim import build_optimizer, classifier_of, param_groups, set_lr


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)
        self.bn = nn.BatchNorm3d(4)
        self.lstm = nn.LSTM(4, 4)
        self.gru = nn.GRU(4, 4)
        self.fc = nn.Linear(4, 2)


def _by_name(groups):
    return {g["name"]: g for g in groups}


def test_fine_tune_table():
    groups = _by_name(param_groups(Toy(), fine_tune=True))
    assert groups["base"]["lr_mult"] == 0.6 and set(groups["base"]["param_names"]) == {
        "conv.weight", "conv.bias", "bn.weight", "bn.bias"}
    assert groups["new"]["lr_mult"] == 1.0 and groups["new"]["param_names"] == ["fc.weight", "fc.bias"]
    assert groups["rec"]["lr_mult"] == 0.5
    assert {n.split(".")[0] for n in groups["rec"]["param_names"]} == {"lstm", "gru"}  # original missed 'gru'


def test_scratch_everything_at_full_rate():
    assert {g["lr_mult"] for g in param_groups(Toy(), fine_tune=False)} == {1.0}


def test_every_parameter_in_exactly_one_group():
    model = Toy()
    groups = param_groups(model, fine_tune=True)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_frozen_parameters_left_out():
    model = Toy()
    model.conv.weight.requires_grad_(False)
    names = [n for g in param_groups(model, True) for n in g["param_names"]]
    assert "conv.weight" not in names


@pytest.mark.parametrize("network,recurrent", [("srtg_r3d_18", ".sar.lstm."), ("mtnet_xs", ".op.")])
def test_real_models_head_and_recurrent_cells(network, recurrent):
    model = create_model(network, num_classes=5)
    groups = _by_name(param_groups(model, fine_tune=True))
    assert groups["new"]["param_names"] == ["fc.weight", "fc.bias"]
    assert groups["rec"]["param_names"] and all(recurrent in n for n in groups["rec"]["param_names"])
    assert not any(recurrent in n for n in groups["base"]["param_names"])
    assert classifier_of(model) is model.fc


def test_sgd_settings_and_set_lr():
    opt = build_optimizer(Toy(), lr=0.1, fine_tune=True)
    assert isinstance(opt, torch.optim.SGD)
    for g in opt.param_groups:
        assert g["momentum"] == 0.9 and g["nesterov"] is True and g["weight_decay"] == 1e-4
    assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx({"base": 0.06, "new": 0.1, "rec": 0.05})
    set_lr(opt, 0.01)
    assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx({"base": 0.006, "new": 0.01, "rec": 0.005})
