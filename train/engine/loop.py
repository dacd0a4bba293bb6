"""One training epoch and one evaluation pass: the same code on CPU and CUDA, single process or DDP.

The optimiser, AMP scaler, lr schedule and loss travel as one :class:`TrainStep`; a step's learning rate is
``schedule.lr_at(epoch + i / len(plan), multigrid_scale(plan[i]))``. Mixed precision is ``torch.amp``:
autocast + ``GradScaler`` for fp16 (replacing apex O1), autocast alone for bf16, neither for fp32. A NaN/inf
loss or fp16 gradient overflow goes through one policy (:meth:`TrainStep.skip`): skipped and counted under
fp16, fatal after ``max_nonfinite`` in a row, and fatal at once under fp32/bf16 (docs/differences.md#32).
Loader batches become ``(clips (B, C, T, H, W), labels (B,))`` on the device through one converter
(`data.pipeline.device_batches.DeviceBatches`, ``--decode``), whose time counts as reading; a training batch it returns
empty (every clip undecodable) is skipped on every rank. Timings are synchronised on CUDA.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from data.pipeline.device_batches import DeviceBatches
from network.weights import unwrap_model
from train.distributed import agree, all_reduce_sum, get_world_size
from train.engine.lr_scheduler import Schedule, multigrid_scale
from train.engine.optim import set_lr
from train.monitor.metric import default_metrics
from train.monitor.progress import Monitor

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


@dataclass
class TrainStep:
    """Optimiser + scaler + lr schedule + loss: one SGD step on a batch, with the non-finite policy."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Schedule
    device: torch.device
    precision: str = "fp32"
    criterion: nn.Module = field(default_factory=nn.CrossEntropyLoss)
    max_nonfinite: int = MAX_NONFINITE
    consecutive: int = 0
    timings: tuple[float, float] = (0.0, 0.0)  # forward, backward seconds of the last call
    channels_last: bool = False  # feed clips as channels_last_3d (--channels-last)

    def set_lr(self, progress: float, shape: Any = None) -> float:
        """Apply the rate at ``progress`` epochs (× the multigrid factor of ``shape``) to every group."""
        lr = self.schedule.lr_at(progress, multigrid_scale(shape))
        set_lr(self.optimizer, lr)
        return lr

    def __call__(self, model: nn.Module, data: torch.Tensor, target: torch.Tensor,
                 where: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Forward, backward, update. Returns ``(logits, loss)`` detached, or None when the step was skipped."""
        if self.channels_last:
            data = data.contiguous(memory_format=torch.channels_last_3d)
        t0 = time.perf_counter()
        with autocast(self.device, self.precision):
            output = model(data)
        loss = self.criterion(output.float(), target)
        _sync(self.device)
        t1 = time.perf_counter()
        self.timings = (t1 - t0, 0.0)
        self.optimizer.zero_grad(set_to_none=True)
        # Every rank must take the same branch, or DDP's gradient all-reduce would hang.
        bad = all_reduce_sum((~torch.isfinite(loss.detach())).to(torch.float32).reshape(1))
        if bool(bad.item() > 0):
            value = float(loss.detach())
            self.skip(where, f"loss is {value}" if not math.isfinite(value) else "loss is non-finite on another rank",
                      loss.detach())
            return None
        scale_before = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        _sync(self.device)
        self.timings = (t1 - t0, time.perf_counter() - t1)
        if scale_before is not None and self.scaler.get_scale() < scale_before:
            self.skip(where, "gradients overflowed")  # the scaler already skipped the update
            return None
        self.consecutive = 0
        return output.detach().float(), loss.detach()

    def skip(self, where: str, why: str, loss: torch.Tensor | None = None) -> None:
        """The one non-finite path: count, back the fp16 scale off, or stop the run."""
        self.consecutive += 1
        fp16 = self.scaler.is_enabled()
        if not fp16 or self.consecutive > self.max_nonfinite:
            what = (f"{self.consecutive} consecutive non-finite fp16 steps ({why})" if fp16
                    else f"{why} under {self.precision}")
            raise NonFiniteLossError(f"{where}: {what}; training stopped, the last saved checkpoint is kept "
                                     "(lower --lr-base, check the data, or resume with --resume-epoch auto)")
        if loss is not None:
            self.scaler.scale(loss)  # creates the scale tensor on the loss's device if this is the first step
            self.scaler.update(self.scaler.get_scale() * self.scaler.get_backoff_factor())
        log.warning("%s: %s under fp16, step skipped (%d in a row)", where, why, self.consecutive)


def _batches(loader: Any, to_device: DeviceBatches, all_ranks: bool = False) -> Iterator[tuple[float, Any]]:
    """Yield ``(seconds spent waiting for and converting the batch, to_device(batch))``; the batch is None when
    ``to_device`` dropped every clip (with ``all_ranks``: on any rank, so that every rank skips the step)."""
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = to_device(next(it))
        except StopIteration:
            return
        if all_ranks and to_device.can_drop and not agree(batch is not None):
            batch = None
        yield time.perf_counter() - t0, batch


def _skip_empty(where: str) -> None:
    log.warning("%s: no clip of the batch could be decoded (on this or another rank): step skipped, its bad clips "
                "counted as skipped", where)


def _dataset_skipped(loader: Any, reset: bool = False) -> int:
    """Corrupt/missing clips the loader's dataset replaced (0 if it does not count them); optionally reset."""
    dataset = getattr(loader, "dataset", None)
    if reset and callable(getattr(dataset, "reset_skipped", None)):
        dataset.reset_skipped()
    return int(getattr(dataset, "skipped", 0) or 0)


def _finish(metrics: Any, loader: Any, device: torch.device, started: float, lr: float | None,
            nonfinite: int) -> EpochResult:
    metrics.reduce(device)
    values = metrics.as_dict()
    skipped = int(all_reduce_sum(torch.tensor([_dataset_skipped(loader)], dtype=torch.float64, device=device)).item())
    return EpochResult(top1=values["top1"], top5=values["top5"], loss=values["loss-ce"], lr=lr,
                       samples=metrics.num_samples, skipped=skipped, seconds=time.perf_counter() - started,
                       nonfinite_steps=nonfinite)


def train_one_epoch(model: nn.Module, loader: Any, step: TrainStep, epoch: int,
                    plan: Sequence[Any] | None = None, monitor: Monitor | None = None, start: int = 0,
                    to_device: DeviceBatches | None = None) -> EpochResult:
    """Train ``model`` for one pass over ``loader``; ``epoch`` is 0-based (the log shows ``epoch + 1``);
    ``start``: the loader's first batch is step ``start`` of the epoch (a mid-epoch resume).

    ``plan`` holds each iteration's multigrid shape (its lr factor); without it every step has factor 1.
    ``to_device`` turns a loader batch into device tensors (default: a copy to ``step.device``).
    """
    to_device = to_device or DeviceBatches(step.device)
    monitor = monitor or Monitor()
    metrics = default_metrics()
    model.train()
    _dataset_skipped(loader, reset=True)
    started = time.perf_counter()
    total = len(plan) if plan is not None else len(loader)
    nonfinite, lr = 0, None
    with monitor.epoch(epoch, total, "train") as progress:
        for i, (read_s, batch) in enumerate(_batches(loader, to_device, all_ranks=True), start):
            lr = step.set_lr(epoch + i / total, plan[i] if plan is not None and i < len(plan) else None)
            where = f"epoch {epoch + 1}, iteration {i}"
            if batch is None:
                _skip_empty(where)
                progress.advance(read_s, 0.0, 0.0, clips=0)
                continue
            data, target = batch
            out = step(model, data, target, where=where)
            if out is None:
                nonfinite += 1
            else:
                shape = (data.shape[0] * get_world_size(), *data.shape[1:])
                for m in (metrics, progress.interval):
                    m.update(out[0], target, out[1], lr, shape)
            progress.advance(read_s, *step.timings, clips=data.shape[0] if out is not None else 0)
    if nonfinite:
        log.warning("Epoch [%d]: %d step(s) skipped because of non-finite loss/gradients", epoch + 1, nonfinite)
    return _finish(metrics, loader, step.device, started, lr, nonfinite)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, device: torch.device, precision: str, epoch: int,
             monitor: Monitor | None = None, criterion: nn.Module | None = None,
             to_device: DeviceBatches | None = None) -> EpochResult:
    """Validation pass: sample-weighted loss/top-1/top-5 over the (rank-sharded) loader, summed over ranks;
    ``to_device`` as in :func:`train_one_epoch` (default: a copy to ``device``)."""
    to_device = to_device or DeviceBatches(device)
    monitor = monitor or Monitor()
    criterion = criterion or nn.CrossEntropyLoss()
    metrics = default_metrics()
    # The bare module: DDP's forward would broadcast buffers, a collective that hangs when ranks hold
    # different numbers of validation batches (the shards differ by up to one clip).
    model = unwrap_model(model)
    model.eval()
    _dataset_skipped(loader, reset=True)
    started = time.perf_counter()
    with monitor.epoch(epoch, len(loader), "val") as progress:
        for read_s, batch in _batches(loader, to_device):
            if batch is None:  # ranks hold different numbers of val batches: no agreement, no collective
                _skip_empty(f"validation after epoch {epoch + 1}")
                progress.advance(read_s, 0.0, 0.0, clips=0)
                continue
            data, target = batch
            t0 = time.perf_counter()
            with autocast(device, precision):
                output = model(data).float()
            loss = criterion(output, target)
            _sync(device)
            for m in (metrics, progress.interval):
                m.update(output, target, loss, None, None)
            progress.advance(read_s, time.perf_counter() - t0, 0.0, clips=data.shape[0])
    return _finish(metrics, loader, device, started, None, 0)
