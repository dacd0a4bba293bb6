"""train/engine/ema.py: the average follows its formula over parameters and buffers, is saved and resumed
bit for bit, and evaluation/prediction/export select it with --weights ema (one line when it is missing)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from engine_helpers import TinyNet, tiny_network

from evaluation.inference import load_model
from train.engine.ema import ModelEma, restore_ema
from train.results.checkpoint import EMA_KEY, load_checkpoint_file, save_checkpoint


def _train_steps(model: nn.Module, opt: torch.optim.Optimizer, ema: ModelEma, k: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(k):
        x = torch.randn(2, 3, 4, 16, 16, generator=gen)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)


def test_ema_equals_the_formula_after_k_steps():
    torch.manual_seed(0)
    model, decay, k = TinyNet(3), 0.9, 4
    ema = ModelEma(model, decay)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = {n: v.double().clone() for n, v in model.state_dict().items() if v.is_floating_point()}
    gen = torch.Generator().manual_seed(0)
    for _ in range(k):
        x = torch.randn(2, 3, 4, 16, 16, generator=gen)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        ema.update(model)
        for n, v in model.state_dict().items():
            if n in expected:
                expected[n] = decay * expected[n] + (1 - decay) * v.double()
    got = ema.state_dict()
    for n, want in expected.items():  # parameters and BatchNorm's running statistics
        torch.testing.assert_close(got[n].double(), want, rtol=1e-5, atol=1e-6, msg=n)
        assert not torch.equal(got[n], model.state_dict()[n]), n  # the average lags the weights
    assert got["features.1.num_batches_tracked"].item() == k  # integer buffers are copied
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training


def test_decay_out_of_range_is_refused():
    with pytest.raises(ValueError, match="--ema-decay must be in"):
        ModelEma(TinyNet(3), 1.0)


def test_checkpoint_round_trip_continues_bit_identically(tmp_path):
    torch.manual_seed(1)
    model = TinyNet(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ema = ModelEma(model, 0.8)
    _train_steps(model, opt, ema, 2)
    path = save_checkpoint(tmp_path / "n_ep-0001.pth", model, 1, opt, ema_state=ema.state_dict())
    _train_steps(model, opt, ema, 3, seed=5)  # the uninterrupted run

    ckpt = load_checkpoint_file(path)
    again = TinyNet(3)
    again.load_state_dict(ckpt["state_dict"])
    opt2 = torch.optim.SGD(again.parameters(), lr=0.1)
    opt2.load_state_dict(ckpt["optimizer"])
    ema2 = ModelEma(again, 0.8)
    assert "resumed" in restore_ema(ema2, ckpt, "resume", path)
    _train_steps(again, opt2, ema2, 3, seed=5)
    for n, v in ema.state_dict().items():
        assert torch.equal(v, ema2.state_dict()[n]), n


def test_resume_without_saved_average_starts_at_the_weights(tmp_path, caplog):
    model = TinyNet(3)
    path = save_checkpoint(tmp_path / "n_ep-0001.pth", model, 1)
    ema = ModelEma(TinyNet(3), 0.9)
    assert "starts at" in restore_ema(ema, load_checkpoint_file(path), "resume", path)
    assert "holds no EMA weights" in caplog.text


def test_weights_ema_selects_the_average_and_refuses_a_checkpoint_without_one(tmp_path, capsys):
    import predict

    with tiny_network() as name:
        model, ema_model = TinyNet(4), TinyNet(4)
        ema = ModelEma(ema_model, 0.5)
        with_ema = save_checkpoint(tmp_path / "a.pth", model, 1, network=name, ema_state=ema.state_dict())
        without = save_checkpoint(tmp_path / "b.pth", model, 1, network=name)
        loaded = load_model(with_ema, weights="ema").model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in ema_model.state_dict().items())
        assert torch.equal(load_model(with_ema).model.state_dict()["fc.weight"], model.fc.weight)
        assert EMA_KEY not in load_checkpoint_file(without)
        assert predict.main([str(tmp_path / "none.mp4"), "--checkpoint", str(without), "--weights", "ema"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {without}: holds no EMA weights (trained without --ema-decay); use --weights model"]


def test_a_skipped_step_leaves_the_average():
    model = TinyNet(3)
    ema = ModelEma(model, 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    ema.update(ok=torch.tensor(False))
    assert all(torch.equal(before[k], v) for k, v in ema.state_dict().items() if v.is_floating_point())
    ema.update(ok=torch.tensor(True))
    w = model.fc.weight.detach()
    torch.testing.assert_close(ema.state_dict()["fc.weight"], 0.5 * before["fc.weight"] + 0.5 * w)


@pytest.mark.parametrize("tool", ["evaluate", "tools.export"])
def test_evaluate_and_export_refuse_weights_ema_without_an_average(tmp_path, capsys, tool):
    import importlib

    with tiny_network() as name:
        without = save_checkpoint(tmp_path / "b.pth", TinyNet(4), 1, network=name)
        extra = ["--format", "torchscript"] if tool == "tools.export" else []
        assert importlib.import_module(tool).main(["--checkpoint", str(without), "--weights", "ema", *extra]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"error: {without}: holds no EMA weights (trained without --ema-decay); use --weights model"
