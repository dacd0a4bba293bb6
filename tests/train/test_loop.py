"""train/engine/loop.py: one epoch on real DataLoaders, NaN/inf handling per precision, lr per multigrid step, eval,
host synchronisations per step, outputs that are not finite, gradient accumulation and clipping."""
from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn as nn
from engine_helpers import count_syncs
from torch.utils.data import DataLoader, TensorDataset

from data.pipeline.multigrid import plan_epoch
from train.engine.loop import (
    NonFiniteLossError,
    TrainStep,
    evaluate,
    make_scaler,
    micro_batch,
    resolve_precision,
    train_one_epoch,
)
from train.engine.lr_scheduler import MultiStep, multigrid_scale
from train.engine.optim import build_optimizer
from train.monitor.metric import RunningMetrics
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


def test_a_skipped_first_fp16_step_leaves_the_momentum_at_zero():
    """torch's fused SGD keeps uninitialised momentum buffers when the scaler skips its first step."""
    model, step = _setup("fp16")
    step.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 120)  # the first step overflows
    out = step(model, *next(iter(_loader())), where="test")
    assert not out.ok and all(torch.count_nonzero(s["momentum_buffer"]) == 0 for s in step.optimizer.state.values())
    step.scaler.update(new_scale=1024.0)
    result = train_one_epoch(model, _loader(), step, 0)
    assert result.nonfinite_steps == 0
    assert all(torch.isfinite(p).all() for p in model.parameters()) and math.isfinite(result.loss)


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


# --- host synchronisation ------------------------------------------------------------------------------------------

@pytest.fixture
def syncs(monkeypatch):
    """Counts every call that makes the host wait for a device value (on CPU: would, on CUDA)."""
    return count_syncs(monkeypatch)


@pytest.mark.parametrize("precision, extra", [("fp32", {}), ("fp16", {}), ("fp16", {"clip_grad_norm": 1.0}),
                                              ("fp32", {"accumulate": 2, "clip_grad_norm": 0.5})])
def test_steps_wait_for_the_device_only_at_log_intervals_and_the_epoch_end(syncs, precision, extra):
    """12 steps at --log-interval 4: three speed-line reads and one epoch-end read, one host transfer each."""
    model, step = _setup(precision)
    for key, value in extra.items():
        setattr(step, key, value)
    loader = _loader(n=24, batch=2)
    calls_at = []
    model.register_forward_hook(lambda *_: calls_at.append(len(syncs)))
    result = train_one_epoch(model, loader, step, 0, monitor=Monitor(log_interval=4, interactive=False))
    assert math.isfinite(result.loss) and result.samples + 2 * result.nonfinite_steps == 24
    base = calls_at[0]  # the DataLoader draws its base seed with .item() (a host tensor) when it starts
    assert [n - base for n in calls_at] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], syncs  # none between log points
    assert len(syncs) - base <= 12 // 4 + 1, syncs


def test_a_nan_loss_under_fp32_stops_the_run_at_the_next_read_before_any_save():
    model, step = _setup("fp32")
    with pytest.raises(NonFiniteLossError, match="epoch 1, iteration 1: loss is nan under fp32"):
        train_one_epoch(model, _loader(n=24, nan_batches=(1,), batch=2), step, 0, monitor=Monitor(log_interval=4))


# --- outputs that are not finite -----------------------------------------------------------------------------------

class NanRows(Clf):
    """Outputs NaN for every clip whose first value is negative (a model gone bad on some inputs)."""

    def forward(self, x):
        out = super().forward(x)
        return torch.where((x.flatten(1)[:, :1] < 0), torch.full_like(out, float("nan")), out)


def test_nan_outputs_are_counted_apart_and_make_top1_invalid():
    torch.manual_seed(0)
    model, loader = NanRows(), _loader(n=10, batch=4)
    x, y = loader.dataset.tensors
    bad = x.flatten(1)[:, 0] < 0
    assert 0 < int(bad.sum()) < 10
    result = evaluate(model, loader, CPU, "fp32", 0)
    assert result.nonfinite_rows == int(bad.sum()) and result.samples == 10 - int(bad.sum())
    assert math.isnan(result.top1) and math.isnan(result.top5)
    with torch.no_grad():
        good = model(x)[~bad]
    assert result.loss == pytest.approx(nn.functional.cross_entropy(good, y[~bad]).item(), rel=1e-5)
    assert result.as_row(1)["Top1"] == "nan" and result.as_row(1)["NonFinite"] == int(bad.sum())


# --- gradient accumulation and clipping ----------------------------------------------------------------------------

@pytest.mark.parametrize("i, start, total, every, expected", [
    (0, 0, 7, 3, (1 / 3, False)), (2, 0, 7, 3, (1 / 3, True)), (6, 0, 7, 3, (1.0, True)),  # the short last group
    (4, 4, 7, 3, (1 / 2, False)), (5, 4, 7, 3, (1 / 2, True)),  # resumed inside a group of 3: the rest of it
    (3, 0, 7, 1, (1.0, True))])
def test_micro_batch_shares_and_update_points(i, start, total, every, expected):
    share, update = micro_batch(i, start, total, every)
    assert (share, update) == (pytest.approx(expected[0]), expected[1])


def _sgd(model, precision="fp32"):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True)
    return TrainStep(opt, make_scaler(CPU, precision), MultiStep(0.1, [10], 0.1), CPU, precision)


def test_accumulating_n_batches_of_b_equals_one_batch_of_n_times_b():
    torch.manual_seed(0)
    small, big = Clf(), Clf()
    big.load_state_dict(small.state_dict())
    step_small, step_big = _sgd(small), _sgd(big)
    step_small.accumulate = 3
    train_one_epoch(small, _loader(n=24, batch=2), step_small, 0)  # 12 batches of 2: 4 steps of 3 micro-batches
    train_one_epoch(big, _loader(n=24, batch=6), step_big, 0)  # 4 batches of 6
    for a, b in zip(small.parameters(), big.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(small.fc.weight, Clf().fc.weight)


class CountsNoSync(Clf):
    """A model with DDP's ``no_sync`` context, counting how often it is entered."""

    def __init__(self):
        super().__init__()
        self.entered = 0

    @contextlib.contextmanager
    def no_sync(self):
        self.entered += 1
        yield


def test_ddp_gradient_sync_only_on_the_last_micro_batch():
    model = CountsNoSync()
    step = _sgd(model)
    step.accumulate = 3
    train_one_epoch(model, _loader(n=14, batch=2), step, 0)  # 7 batches: groups of 3, 3, 1
    assert model.entered == 2 + 2


def test_clipping_bounds_the_update_and_logs_the_norm_before_clipping(caplog):
    torch.manual_seed(0)
    model = Clf()
    opt = torch.optim.SGD(model.parameters(), lr=1.0, fused=True)  # update = -lr * clipped gradient
    step = TrainStep(opt, make_scaler(CPU, "fp32"), MultiStep(1.0, [10], 0.1), CPU, clip_grad_norm=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    loader = DataLoader(TensorDataset(100 * torch.randn(4, 3, 2, 2, 2), torch.arange(4) % 3), batch_size=4)
    with caplog.at_level("INFO", logger="train.monitor.callback"):
        result = train_one_epoch(model, loader, step, 0, monitor=Monitor(log_interval=1))
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]).norm()
    assert 0 < moved <= 1e-3 * (1 + 1e-4)
    assert result.grad_norm > 1e-3  # the norm before clipping
    line = [r.getMessage() for r in caplog.records if r.name == "train.monitor.callback"][-1]
    assert line.endswith(f"lr = 1.00e+0, grad_norm = {result.grad_norm:.5f}  ")


def test_without_clipping_the_speed_line_keeps_the_original_fields(caplog):
    model, step = _setup()
    with caplog.at_level("INFO", logger="train.monitor.callback"):
        train_one_epoch(model, _loader(), step, 0, monitor=Monitor(log_interval=1))
    lines = [r.getMessage() for r in caplog.records if r.name == "train.monitor.callback"]
    assert len(lines) == 3 and all(line.endswith("lr = 1.00e-1  ") for line in lines)


@pytest.mark.cuda
@pytest.mark.parametrize("precision, clip", [("fp16", 0.0), ("fp16", 1.0), ("bf16", 0.0), ("fp32", 1.0)])
def test_cuda_steps_never_wait_for_the_gpu(precision, clip):
    """torch's sync debug mode raises on any call that waits for the GPU: none in 6 steps of 2 micro-batches
    (forward, backward, scaler, clipping, fused SGD, device sums, CUDA-event timings); the read after them is
    the one wait."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = Clf().to(device)
    step = TrainStep(build_optimizer(model, 0.1), make_scaler(device, precision), MultiStep(0.1, [10], 0.1), device,
                     precision, accumulate=2, clip_grad_norm=clip)
    meter = RunningMetrics(device)
    batches = [(x.to(device), y.to(device)) for x, y in _loader(n=24, batch=2)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i, (x, y) in enumerate(batches):
            share, update = micro_batch(i, 0, len(batches), 2)
            out = step(model, x, y, f"step {i}", share, update)
            meter.score(out.logits, y, out.loss, pending=True)
            if update:
                meter.commit(out.ok, out.norm, i)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    sums = meter.read(reduce=False, full=True)
    assert sums["steps"] == 6 and sums["samples"] + 4 * sums["skipped_steps"] == 24
    assert step.clock.read()[0] > 0
