"""One training epoch and one evaluation pass: the same code on CPU and CUDA, single process or DDP.

Mixed precision uses ``torch.amp``: autocast + ``GradScaler`` for fp16 (the replacement of the original's apex
O1), autocast without scaler for bf16, neither for fp32; both become no-ops where disabled. Divergences from the
original ``fit`` (spec bugs 33-37): batches are ``(clip, label)`` pairs; no anomaly detection, sleeps or cache
flushing; no retry loop swallowing errors: a non-finite loss is skipped through the scaler under fp16
(counted, and fatal after ``max_nonfinite`` in a row) and stops the run under fp32/bf16; timings are
synchronised; metrics are sample-weighted and summed over ranks.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn

from network.weights import unwrap_model
from train.callback import CallbackList, default_callbacks, progress_bar
from train.distributed import all_reduce_sum, get_world_size, is_main
from train.metric import MetricList, default_metrics
from train.optim import set_lr

log = logging.getLogger(__name__)

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MAX_NONFINITE = 20


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf and the step could not be skipped safely: training stops."""


@dataclass
class EpochResult:
    """Per-epoch numbers written to the results CSVs (accuracies are fractions, loss sample-weighted)."""

    top1: float
    top5: float
    loss: float
    lr: float | None
    samples: int
    skipped: int
    seconds: float
    nonfinite_steps: int = 0

    def as_row(self, epoch: int) -> dict[str, Any]:
        """The CSV row ``Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds``."""
        return {"Epoch": epoch, "Top1": f"{self.top1:.5f}", "Top5": f"{self.top5:.5f}", "Loss": f"{self.loss:.5f}",
                "LR": "" if self.lr is None else f"{self.lr:.6g}", "Samples": self.samples,
                "Skipped": self.skipped, "Seconds": f"{self.seconds:.2f}"}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_precision(requested: str | None, device: torch.device) -> str:
    """``--precision`` or the default: fp16 on CUDA, fp32 on CPU. bf16 on CPU is allowed with a warning."""
    if requested is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if requested == "bf16" and device.type == "cpu":
        log.warning("bf16 on CPU: about 2x faster for r3d_18 here, but it gave NaN gradients in 4 of 5 "
                    "measured runs; use fp32 (the CPU default) if the loss turns NaN")
    if requested == "fp16" and device.type == "cpu":
        log.warning("fp16 autocast on CPU is slow and rarely useful; fp32 is the CPU default")
    return requested


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for fp16/bf16, a no-op context for fp32."""
    dtype = AMP_DTYPES.get(precision)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is enabled only for fp16 (its state goes into checkpoints either way)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _skipped(loader: Any) -> int:
    """Corrupt/missing clips replaced so far by the loader's dataset (0 if it does not count them)."""
    return int(getattr(getattr(loader, "dataset", None), "skipped", 0) or 0)


def _reset_skipped(loader: Any) -> None:
    reset = getattr(getattr(loader, "dataset", None), "reset_skipped", None)
    if callable(reset):
        reset()


def _global_shape(data: torch.Tensor) -> tuple[int, ...]:
    """``(B, C, T, H, W)`` with B summed over ranks (the shape the log line reports)."""
    shape = list(data.shape)
    shape[0] *= get_world_size()
    return tuple(shape)


@dataclass
class _Interval:
    """Read/forward/backward seconds and clips since the last log line."""

    read: float = 0.0
    forward: float = 0.0
    backward: float = 0.0
    clips: int = 0

    def per_clip(self) -> dict[str, float | None]:
        n = max(1, self.clips)
        return {"read_elapse": self.read / n, "forward_elapse": self.forward / n,
                "backward_elapse": self.backward / n if self.backward else None}


def _finish(metrics: MetricList, loader: Any, device: torch.device, started: float, lr: float | None,
            nonfinite: int) -> EpochResult:
    metrics.reduce(device)
    values = metrics.as_dict()
    skipped = int(all_reduce_sum(torch.tensor([_skipped(loader)], dtype=torch.float64, device=device)).item())
    return EpochResult(top1=values["top1"], top5=values["top5"], loss=values["loss-ce"], lr=lr,
                       samples=metrics.num_samples, skipped=skipped, seconds=time.perf_counter() - started,
                       nonfinite_steps=nonfinite)


def _batches(loader: Any) -> Iterator[tuple[float, Any]]:
    """Yield ``(seconds spent waiting for the batch, batch)``."""
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        yield time.perf_counter() - t0, batch


def train_one_epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    scheduler: Any, criterion: nn.Module, device: torch.device, precision: str, epoch: int,
                    plan: Sequence[Any] | None = None, lr_scale: Callable[[Any], float] | None = None,
                    callbacks: CallbackList | None = None, log_interval: int = 50,
                    max_nonfinite: int = MAX_NONFINITE, show_progress: bool | None = None) -> EpochResult:
    """Train ``model`` for one pass over ``loader`` (batches of clips ``(B, C, T, H, W)`` and labels ``(B,)``).

    The lr of iteration i is ``scheduler.update(lr_scale(plan[i]))`` (multigrid factor of the step's shape;
    1 without a plan), applied per group × ``lr_mult``. ``epoch`` is 0-based (the log shows it as the original).
    """
    callbacks = callbacks or default_callbacks()
    interval_metrics, epoch_metrics = default_metrics(), default_metrics()
    model.train()
    _reset_skipped(loader)
    started = time.perf_counter()
    tick = _Interval()
    nonfinite = consecutive = 0
    lr = None
    total = len(loader) if hasattr(loader, "__len__") else None
    with progress_bar(total or 0, f"Epoch {epoch} train", enabled=show_progress if is_main() else False) as bar:
        for i, (read_s, (data, target)) in enumerate(_batches(loader)):
            scale = lr_scale(plan[i]) if (plan is not None and lr_scale is not None and i < len(plan)) else 1.0
            lr = scheduler.update(scale)
            set_lr(optimizer, lr)
            data = data.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            t0 = time.perf_counter()
            with autocast(device, precision):
                output = model(data)
            loss = criterion(output.float(), target)
            _sync(device)
            t1 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            bad = ~torch.isfinite(loss.detach())
            # Every rank must take the same branch, or DDP's gradient all-reduce would hang.
            if bool(all_reduce_sum(bad.to(torch.float32).reshape(1)).item() > 0):
                nonfinite += 1
                consecutive += 1
                _nonfinite_step(scaler, precision, epoch, i, loss.detach(), consecutive, max_nonfinite)
                bar.update(1)
                continue
            scale_before = scaler.get_scale() if scaler.is_enabled() else None
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if scale_before is not None and scaler.get_scale() < scale_before:
                nonfinite += 1  # gradients overflowed in fp16: the scaler skipped this step
                consecutive += 1
                if consecutive > max_nonfinite:
                    raise NonFiniteLossError(f"epoch {epoch + 1}, iteration {i}: {consecutive} consecutive fp16 "
                                             "steps with non-finite gradients; lower --lr-base or use --precision fp32")
            else:
                consecutive = 0
            _sync(device)
            t2 = time.perf_counter()
            shape = _global_shape(data)
            for metrics in (interval_metrics, epoch_metrics):
                metrics.update(output.detach().float(), target, loss.detach(), lr, shape)
            tick.read += read_s
            tick.forward += t1 - t0
            tick.backward += t2 - t1
            tick.clips += data.shape[0]
            bar.update(1)
            if is_main() and (i + 1) % log_interval == 0:
                callbacks(epoch=epoch, batch=i, namevals=interval_metrics.get_name_value(), **tick.per_clip())
                interval_metrics.reset()
                tick = _Interval()
    if nonfinite:
        log.warning("Epoch [%d]: %d step(s) skipped because of non-finite loss/gradients", epoch, nonfinite)
    return _finish(epoch_metrics, loader, device, started, lr, nonfinite)


def _nonfinite_step(scaler: torch.amp.GradScaler, precision: str, epoch: int, i: int, loss: torch.Tensor,
                    consecutive: int, max_nonfinite: int) -> None:
    """Skip a step whose loss is NaN/inf under fp16 (backing the scale off), else stop the run."""
    value = float(loss)
    if scaler.is_enabled() and consecutive <= max_nonfinite:
        scaler.scale(loss)  # creates the scale tensor on the loss's device if this is the first step
        scaler.update(scaler.get_scale() * scaler.get_backoff_factor())
        log.warning("Epoch [%d] Batch [%d]: loss is %s under fp16, step skipped (%d in a row)", epoch, i, value,
                    consecutive)
        return
    where = f"loss is {value}" if not math.isfinite(value) else "loss is non-finite on another rank"
    why = (f"{consecutive} consecutive non-finite fp16 losses" if scaler.is_enabled()
           else f"{where} under {precision}")
    raise NonFiniteLossError(f"epoch {epoch + 1}, iteration {i}: {why}; training stopped, the last saved "
                             "checkpoint is kept (lower --lr-base, check the data, or resume with --resume-epoch)")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, criterion: nn.Module, device: torch.device, precision: str,
             epoch: int, callbacks: CallbackList | None = None, log_interval: int = 50,
             show_progress: bool | None = None) -> EpochResult:
    """Validation pass: sample-weighted loss/top-1/top-5 over the (rank-sharded) loader, summed over ranks."""
    callbacks = callbacks or default_callbacks()
    metrics = default_metrics()
    # The bare module: DDP's forward would broadcast buffers, a collective that hangs when ranks hold
    # different numbers of validation batches (the shards differ by up to one clip).
    model = unwrap_model(model)
    model.eval()
    _reset_skipped(loader)
    started = time.perf_counter()
    tick = _Interval()
    total = len(loader) if hasattr(loader, "__len__") else None
    with progress_bar(total or 0, f"Epoch {epoch} val", enabled=show_progress if is_main() else False) as bar:
        for i, (read_s, batch) in enumerate(_batches(loader)):
            data, target = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            t0 = time.perf_counter()
            with autocast(device, precision):
                output = model(data)
            loss = criterion(output.float(), target)
            _sync(device)
            tick.read += read_s
            tick.forward += time.perf_counter() - t0
            tick.clips += data.shape[0]
            metrics.update(output.float(), target, loss, None, None)
            bar.update(1)
            if is_main() and (i + 1) % log_interval == 0:
                callbacks(epoch=epoch, batch=i, namevals=metrics.get_name_value(), **tick.per_clip())
                tick = _Interval()
    return _finish(metrics, loader, device, started, None, 0)
