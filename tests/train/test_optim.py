"""train/engine/optim.py: parameter groups by module type (fine-tune rules), SGD settings, per-group lr."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from network.registry import create_model
from train.engine.optim import build_optimizer, classifier_of, fusable, param_groups, set_lr
from train.results.checkpoint import load_optimizer_state


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


def _steps(opt: torch.optim.Optimizer, model: nn.Module, n: int = 5) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(n):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()


def test_fused_update_on_cpu_equals_the_per_tensor_loop():
    torch.manual_seed(0)
    fused_model, loop_model = Toy(), Toy()
    loop_model.load_state_dict(fused_model.state_dict())
    fused = build_optimizer(fused_model, lr=0.1, fine_tune=True)
    assert all(g["fused"] is True for g in fused.param_groups)
    loop = build_optimizer(loop_model, lr=0.1, fine_tune=True)
    for g in loop.param_groups:
        g["fused"] = None  # torch's default on CPU: one update per tensor
    _steps(fused, fused_model)
    _steps(loop, loop_model)
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_loading_a_state_without_kernel_flags_keeps_the_fused_kernel():
    model = Toy()
    opt = build_optimizer(model, lr=0.1)
    _steps(opt, model, 1)
    state = opt.state_dict()
    for g in state["param_groups"]:  # as an original checkpoint's optimizer state: no 'fused' / 'foreach'
        g.pop("fused"), g.pop("foreach")
    fresh = build_optimizer(Toy(), lr=0.1)
    load_optimizer_state(fresh, state)
    assert all(g["fused"] is True for g in fresh.param_groups)
    assert fresh.state_dict()["state"].keys() == state["state"].keys()


def test_fusable():
    assert fusable(Toy().parameters())
    assert not fusable([])
    assert not fusable([torch.zeros(2, dtype=torch.int64)])
    assert not fusable([torch.zeros(2, device="meta")])


def test_no_decay_norm_bias_splits_every_fine_tune_group():
    """Decay stays on the conv, linear and recurrent weight matrices; norms, biases and other 1-D tensors get
    none, and each part keeps its group's lr multiplier."""
    model = Toy()
    model.register_parameter("scale", nn.Parameter(torch.ones(4)))  # a 1-D parameter that is neither norm nor bias
    groups = _by_name(param_groups(model, fine_tune=True, no_decay_norm_bias=True, weight_decay=0.05))
    assert set(groups) == {"base", "base_no_decay", "new", "new_no_decay", "rec", "rec_no_decay"}
    assert groups["base"]["param_names"] == ["conv.weight"]
    assert set(groups["base_no_decay"]["param_names"]) == {"scale", "conv.bias", "bn.weight", "bn.bias"}
    assert groups["new"]["param_names"] == ["fc.weight"] and groups["new_no_decay"]["param_names"] == ["fc.bias"]
    assert all(n.split(".")[-1].startswith("weight_") for n in groups["rec"]["param_names"])
    assert all(n.split(".")[-1].startswith("bias_") for n in groups["rec_no_decay"]["param_names"])
    for name, g in groups.items():
        assert g["weight_decay"] == (0.0 if name.endswith("_no_decay") else 0.05), name
        assert g["lr_mult"] == {"base": 0.6, "new": 1.0, "rec": 0.5}[name.split("_")[0]], name
    opt = build_optimizer(model, lr=0.1, fine_tune=True, weight_decay=0.05, no_decay_norm_bias=True)
    assert {g["name"]: g["weight_decay"] for g in opt.param_groups} == {n: g["weight_decay"] for n, g in groups.items()}


def test_without_the_flag_every_parameter_decays():
    opt = build_optimizer(Toy(), lr=0.1, weight_decay=0.05)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05] * len(opt.param_groups)


def test_no_decay_leaves_1d_parameters_unshrunk_under_zero_gradients():
    model = Toy()
    opt = build_optimizer(model, lr=0.1, weight_decay=0.5, no_decay_norm_bias=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (p.ndim == 1), n  # only the matrices shrink


@pytest.mark.parametrize("no_decay", [False, True])
def test_adamw_update_equals_torch_adamw_on_the_same_groups(no_decay):
    torch.manual_seed(0)
    ours_model, ref_model = Toy(), Toy()
    ref_model.load_state_dict(ours_model.state_dict())
    ours = build_optimizer(ours_model, lr=0.01, fine_tune=True, momentum=0.8, weight_decay=0.05, name="adamw",
                           no_decay_norm_bias=no_decay)
    assert isinstance(ours, torch.optim.AdamW) and all(g["fused"] is True for g in ours.param_groups)
    assert all(g["betas"] == (0.8, 0.999) for g in ours.param_groups)
    groups = param_groups(ref_model, True, no_decay, 0.05)
    ref = torch.optim.AdamW([{"params": g["params"], "lr": 0.01 * g["lr_mult"], "weight_decay": g["weight_decay"]}
                             for g in groups], betas=(0.8, 0.999), foreach=False)  # the per-tensor loop
    start = {n: p.detach().clone() for n, p in ours_model.named_parameters()}
    _steps(ours, ours_model)
    _steps(ref, ref_model)
    for (name, a), b in zip(ours_model.named_parameters(), ref_model.parameters()):
        assert not torch.equal(a, start[name]), name
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_resume_with_another_optimizer_is_refused(tmp_path):
    from train.results.checkpoint import StartPoint, optimizer_name, restore, save_checkpoint

    model = Toy()
    sgd, adamw = build_optimizer(model, lr=0.1), build_optimizer(model, lr=0.1, name="adamw")
    assert (optimizer_name(sgd), optimizer_name(adamw.state_dict())) == ("sgd", "adamw")
    path = save_checkpoint(tmp_path / "toy_ep-0001.pth", model, 1, adamw, network="toy")
    with pytest.raises(ValueError, match=r"toy_ep-0001.pth: written by --optimizer adamw, but this run uses "
                                         r"--optimizer sgd; resume with --optimizer adamw"):
        restore(StartPoint("resume", 1, path), model, sgd, network="toy")
    assert restore(StartPoint("resume", 1, path), model, build_optimizer(model, lr=0.1, name="adamw"),
                   network="toy")["epoch"] == 1


def test_adamw_state_round_trips_with_its_type(tmp_path):
    """A checkpoint of an AdamW run resumes as AdamW with its moments (the kernel flags are this run's)."""
    model = Toy()
    opt = build_optimizer(model, lr=0.1, name="adamw", no_decay_norm_bias=True)
    _steps(opt, model, 2)
    fresh = build_optimizer(Toy(), lr=0.1, name="adamw", no_decay_norm_bias=True)
    load_optimizer_state(fresh, opt.state_dict())
    saved, loaded = opt.state_dict(), fresh.state_dict()
    assert [g["betas"] for g in loaded["param_groups"]] == [g["betas"] for g in saved["param_groups"]]
    for k, v in saved["state"].items():
        assert torch.equal(loaded["state"][k]["exp_avg_sq"], v["exp_avg_sq"])
