"""train/engine/loop.py: one epoch on real DataLoaders, NaN/inf handling per precision, lr per multigrid step, eval,
host synchronisations per step, outputs that are not finite, gradient accumulation and clipping."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from data.pipeline.multigrid import plan_epoch
from train.engine.loop import NonFiniteLossError, TrainStep, evaluate, make_scaler, resolve_precision, train_one_epoch
from train.engine.lr_scheduler import MultiStep, multigrid_scale
from train.engine.optim import build_optimizer
from train.monitor.progress import Monitor

CPU = torch.device("cpu")


class Clf(nn.Module):
    """``(B, 3, T, H, W) -> (B, K)`` through a flatten + linear layer."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 2 * 2 * 2, k)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _loader(n: int = 12, nan_batches: tuple[int, ...] = (), batch: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 2, 2, 2, generator=g)
    y = torch.arange(n) % 3
    for b in nan_batches:
        x[b * batch] = float("nan")
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)


def _setup(precision: str = "fp32", lr: float = 0.1, max_nonfinite: int = 20):
    torch.manual_seed(0)
    model = Clf()
    step = TrainStep(build_optimizer(model, lr), make_scaler(CPU, precision), MultiStep(lr, [10], 0.1), CPU,
                     precision, max_nonfinite=max_nonfinite)
    return model, step


def test_epoch_result_counts_every_sample():
    model, step = _setup()
    before = model.fc.weight.detach().clone()
    result = train_one_epoch(model, _loader(), step, 0, monitor=Monitor(log_interval=1))
    assert result.samples == 12 and result.skipped == 0 and result.nonfinite_steps == 0
    assert 0.0 <= result.top1 <= result.top5 <= 1.0 and math.isfinite(result.loss)
    assert result.lr == 0.1
    assert not torch.equal(before, model.fc.weight)


def test_nan_loss_stops_fp32_run():
    model, step = _setup("fp32")
    with pytest.raises(NonFiniteLossError, match="iteration 1: loss is nan under fp32; training stopped"):
        train_one_epoch(model, _loader(nan_batches=(1,)), step, 0)


def test_nan_loss_skipped_by_scaler_under_fp16():
    model, step = _setup("fp16")
    start_scale = step.scaler.get_scale()
    result = train_one_epoch(model, _loader(nan_batches=(1,)), step, 0)
    assert result.nonfinite_steps == 1 and result.samples == 8  # the skipped batch is not counted
    assert result.nonfinite_rows == 1 and math.isnan(result.top1)  # its NaN row is counted apart, never scored
    assert step.scaler.get_scale() < start_scale
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_consecutive_nonfinite_steps_are_capped():
    model, step = _setup("fp16", max_nonfinite=2)
    with pytest.raises(NonFiniteLossError,
                       match="iteration 0: 3 consecutive non-finite fp16 steps \\(the first: loss is nan\\)"):
        train_one_epoch(model, _loader(nan_batches=(0, 1, 2)), step, 0)


def test_lr_follows_scheduler_times_multigrid_scale():
    plan = plan_epoch(12, (1, 2, 2), long_cycles=True, short_cycles=False)  # stages 8B, 4B, 2B, B → ×1, ½, ¼, ⅛
    seen = []
    model, step = _setup()
    step.schedule = MultiStep(0.8, [10], 0.1)
    model.register_forward_pre_hook(lambda m, inp: seen.append(step.optimizer.param_groups[0]["lr"]))
    batches = DataLoader(TensorDataset(torch.randn(12, 3, 2, 2, 2), torch.arange(12) % 3),
                         batch_sampler=[list(range(sum(p[0] for p in plan[:i]), sum(p[0] for p in plan[:i + 1])))
                                        for i in range(len(plan))])
    train_one_epoch(model, batches, step, 0, plan=plan)
    assert seen == pytest.approx([0.8 * multigrid_scale(p) for p in plan])
    assert sorted(set(seen), reverse=True) == pytest.approx([0.8, 0.4, 0.2, 0.1])


def test_evaluate_matches_a_manual_pass():
    model, _ = _setup()
    loader = _loader(n=10, batch=4)
    result = evaluate(model, loader, CPU, "fp32", 0)
    x, y = loader.dataset.tensors
    with torch.no_grad():
        logits = model(x)
    assert result.samples == 10 and result.lr is None
    assert result.top1 == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert result.loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)


def test_precision_defaults():
    assert resolve_precision(None, CPU) == "fp32"
    assert resolve_precision(None, torch.device("cuda", 0)) == "fp16"
    assert resolve_precision("bf16", CPU) == "bf16"
    assert not make_scaler(CPU, "bf16").is_enabled() and make_scaler(CPU, "fp16").is_enabled()


def test_progress_lines_off_a_terminal(caplog):
    """Without a terminal every ~10% of the epoch gets an `iteration x/N` line with clips/s, the loss of the last
    speed line (read every --log-interval steps) and ETAs."""
    model, step = _setup()
    monitor = Monitor(log_interval=2, end_epoch=3, interactive=False)
    monitor.epoch_seconds.append(10.0)  # one earlier epoch of 10 s: the run ETA counts the epochs after this one
    with caplog.at_level("INFO", logger="train.monitor.progress"):
        train_one_epoch(model, _loader(n=40, batch=2), step, 1, monitor=monitor)
    lines = [r.getMessage() for r in caplog.records if r.name == "train.monitor.progress"]
    assert len(lines) == 9 and lines[0].startswith("Epoch 2 train: iteration 2/20, ")  # 10%, 20%, ... 90%
    assert all("clips/s" in ln and "loss " in ln and "epoch ETA" in ln and "run ETA" in ln for ln in lines)
