"""The training knobs inside the loop (train/engine/loop.py with train/engine/targets.py and ema.py): mixed
clips and soft targets reach the loss, training top-1 counts the heavier label, the EMA follows every optimiser
step, and neither adds a host synchronisation."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from engine_helpers import count_syncs
from torch.utils.data import DataLoader, TensorDataset

from train.engine.ema import ModelEma
from train.engine.loop import TrainStep, make_scaler, train_one_epoch
from train.engine.lr_scheduler import MultiStep
from train.engine.optim import build_optimizer
from train.engine.targets import TargetTransform, hard_labels
from train.monitor.progress import Monitor

CPU = torch.device("cpu")
K = 3


def _loader(n: int = 24, batch: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 3, 2, 4, 4, generator=g), torch.arange(n) % K),
                      batch_size=batch, shuffle=False)


def _setup(lr: float = 0.1, **knobs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 4 * 4, K))
    step = TrainStep(build_optimizer(model, lr), make_scaler(CPU, "fp32"), MultiStep(lr, [10], 0.1), CPU, "fp32",
                     **knobs)
    return model, step


def test_training_top1_counts_the_heavier_label_of_each_mixed_target():
    """A model that always predicts class 0 scores exactly the share of clips whose heavier label is 0."""
    targets = TargetTransform(K, 0.1, mixup_alpha=1.0, cutmix_alpha=1.0, seed=3)
    model, step = _setup(lr=1e-12, targets=targets)
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    result = train_one_epoch(model, _loader(), step, epoch=2)
    expected = [hard_labels(targets(x, y, 2, i)[1]) for i, (x, y) in enumerate(_loader())]
    share = torch.cat(expected).eq(0).float().mean().item()
    assert 0 < share < 1 and result.top1 == pytest.approx(share)
    assert torch.cat(expected).tolist() != (torch.arange(24) % K).tolist()  # some pairs count the other label


def test_mixed_targets_reach_the_loss():
    loader = _loader()
    model_a, step_a = _setup()
    model_b, step_b = _setup(targets=TargetTransform(K, mixup_alpha=1.0, seed=1))
    a = train_one_epoch(model_a, loader, step_a, 0)
    b = train_one_epoch(model_b, loader, step_b, 0)
    assert a.loss != pytest.approx(b.loss)
    assert not torch.equal(model_a[1].weight, model_b[1].weight)


def test_ema_follows_every_optimiser_step_with_accumulation():
    model, step = _setup(accumulate=2)
    step.ema = ModelEma(model, 0.5)
    seen = []
    original = step.ema.update
    step.ema.update = lambda *a, **kw: (seen.append(model[1].weight.detach().clone()), original(*a, **kw))
    start = model[1].weight.detach().clone()
    train_one_epoch(model, _loader(n=24, batch=4), step, 0)  # 6 batches, 3 optimiser steps
    assert len(seen) == 3
    expected = start
    for w in seen:
        expected = 0.5 * expected + 0.5 * w
    torch.testing.assert_close(step.ema.state_dict()["1.weight"], expected)


def _count_syncs(monkeypatch, run) -> int:
    with monkeypatch.context() as m:
        calls = count_syncs(m)
        run()
    return len(calls)


def test_mixing_and_ema_add_no_host_sync(monkeypatch):
    def run(**knobs):
        model, step = _setup(**knobs)
        if knobs:
            step.ema = ModelEma(model, 0.9)
        return lambda: train_one_epoch(model, _loader(), step, 0, monitor=Monitor(log_interval=3))
    plain = _count_syncs(monkeypatch, run())
    knobs = _count_syncs(monkeypatch, run(targets=TargetTransform(K, 0.1, mixup_alpha=1.0, cutmix_alpha=1.0)))
    assert knobs == plain
