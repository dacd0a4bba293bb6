"""One training epoch and one evaluation pass: the same code on CPU and CUDA, single process or DDP.

Read :func:`train_one_epoch` (the loop over batches), then :meth:`TrainStep.__call__` (one batch: forward, backward
and, every ``--accumulate-grad`` batches, the optimiser step). The optimiser, AMP scaler, lr schedule and loss
travel as one :class:`TrainStep`; a step's learning rate is ``schedule.lr_at(epoch + i / len(plan),
multigrid_scale(plan[i]))``. Mixed precision (autocast, the GradScaler) is in `train.engine.precision`.

No step waits for the device: scores and non-finite counts are device sums (`train.monitor.metric.RunningMetrics`),
step times CUDA events (`train.monitor.progress.StepClock`), and the host reads them every ``--log-interval``
steps, before a checkpoint and at the epoch end. The non-finite policy has one home, :meth:`TrainStep.check`, and
decides from those reads: under fp16 the GradScaler skips a step whose gradients (or loss) are not finite and
backs its scale off; the step is counted, and more than ``max_nonfinite`` in a row stop the run; under fp32/bf16
a non-finite loss stops the run (docs/differences.md#32). The original stopped at the bad step itself; here the
run stops at the next read, at most ``--log-interval`` steps later and always before anything is saved.

Loader batches become ``(clips (B, C, T, H, W), labels (B,))`` on the device through one converter
(`data.pipeline.device_batches.DeviceBatches`, ``--decode``), whose time counts as reading; a training batch it
returns empty (every clip undecodable) is skipped on every rank. With ``--label-smoothing``/``--mixup-alpha``/
``--cutmix-alpha`` the step's ``targets`` (`train.engine.targets`) turn a training batch into mixed clips and
soft targets ``(B, K)`` before the forward; training top-1 then counts the heavier label of each target. With
``--ema-decay`` the step's ``ema`` (`train.engine.ema`) follows every optimiser step.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from data.pipeline.device_batches import DeviceBatches
from network.weights import unwrap_model
from train.distributed import agree, all_reduce_sum, get_world_size
from train.engine.ema import ModelEma
from train.engine.lr_scheduler import Schedule, multigrid_scale
from train.engine.optim import set_lr
from train.engine.precision import autocast, make_scaler, prime_momentum, resolve_precision
from train.engine.targets import TargetTransform, hard_labels
from train.monitor.metric import RunningMetrics, rates
from train.monitor.progress import Monitor, StepClock

log = logging.getLogger(__name__)

# make_scaler and resolve_precision are the step's: its callers import them from here with it
__all__ = ["MAX_NONFINITE", "EpochResult", "NonFiniteLossError", "StepOutput", "TrainStep", "autocast", "evaluate",
           "make_scaler", "micro_batch", "resolve_precision", "skipped_clips", "train_one_epoch"]

MAX_NONFINITE = 20


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf and the step could not be skipped safely: training stops."""


@dataclass
class EpochResult:
    """Per-epoch numbers written to the results CSVs (accuracies are fractions, loss sample-weighted).

    ``nonfinite_rows``: clips whose outputs were not finite (not scored; any makes top-1/top-5 NaN);
    ``nonfinite_steps``: optimiser steps skipped under fp16; ``grad_norm``: mean norm before clipping, or None;
    ``ema_top1``: validation top-1 of the ``--ema-decay`` weights (None without EMA).
    """

    top1: float
    top5: float
    loss: float
    lr: float | None
    samples: int
    skipped: int
    seconds: float
    nonfinite_steps: int = 0
    nonfinite_rows: int = 0
    grad_norm: float | None = None
    ema_top1: float | None = None

    def as_row(self, epoch: int) -> dict[str, Any]:
        """The CSV row ``Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds,NonFinite`` (``,EmaTop1`` with EMA)."""
        row = {"Epoch": epoch, "Top1": f"{self.top1:.5f}", "Top5": f"{self.top5:.5f}", "Loss": f"{self.loss:.5f}",
               "LR": "" if self.lr is None else f"{self.lr:.6g}", "Samples": self.samples,
               "Skipped": self.skipped, "Seconds": f"{self.seconds:.2f}", "NonFinite": self.nonfinite_rows}
        if self.ema_top1 is not None:
            row["EmaTop1"] = f"{self.ema_top1:.5f}"
        return row

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_sums(cls, sums: dict[str, float], lr: float | None, seconds: float) -> EpochResult:
        """From a full :meth:`RunningMetrics.read` (summed over ranks)."""
        values = rates(sums)
        return cls(top1=values["top1"], top5=values["top5"], loss=values["loss-ce"], lr=lr,
                   samples=int(round(sums["samples"])), skipped=int(round(sums["skipped_clips"])), seconds=seconds,
                   nonfinite_steps=int(round(sums["skipped_steps"])), nonfinite_rows=int(round(sums["nonfinite_rows"])),
                   grad_norm=None if math.isnan(values["grad_norm"]) else values["grad_norm"])


def micro_batch(i: int, start: int, total: int, every: int) -> tuple[float, bool]:
    """``(share of the optimiser step's loss, whether the step is taken after it)`` for iteration ``i`` of an
    epoch of ``total`` iterations resumed at ``start``, with one optimiser step every ``every`` batches counted
    from the epoch's first iteration (the last group of an epoch, or the first after a resume, may be shorter)."""
    group = i // every * every
    first, last = max(start, group), min(group + every, total) - 1
    return 1.0 / (last - first + 1), i >= last


class StepOutput(NamedTuple):
    """A step's ``logits`` (B, K) fp32 and mean ``loss``, detached; when it took the optimiser step: ``ok``
    (0-d bool, False when the update was skipped) and ``norm`` (gradient norm before clipping, or None)."""

    logits: torch.Tensor
    loss: torch.Tensor
    ok: torch.Tensor | None = None
    norm: torch.Tensor | None = None


@dataclass
class TrainStep:
    """Optimiser + scaler + lr schedule + loss: one batch's forward and backward, the optimiser step every
    ``accumulate`` batches (``--accumulate-grad``), clipping (``--clip-grad-norm``), and the non-finite policy.

    ``sync_timings``: wait for the device after each phase so that ``timings`` holds this step's (forward,
    backward) seconds (benchmarks); otherwise the step never waits and ``clock`` is read at the speed line.
    """

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Schedule
    device: torch.device
    precision: str = "fp32"
    criterion: nn.Module = field(default_factory=nn.CrossEntropyLoss)
    max_nonfinite: int = MAX_NONFINITE
    channels_last: bool = False  # feed clips as channels_last_3d (--channels-last)
    accumulate: int = 1
    clip_grad_norm: float = 0.0  # 0: off
    targets: TargetTransform | None = None  # --label-smoothing, --mixup-alpha, --cutmix-alpha (None: class indices)
    ema: ModelEma | None = None  # --ema-decay: the average that follows every optimiser step
    sync_timings: bool = False
    timings: tuple[float, float] = (0.0, 0.0)  # forward, backward seconds of the last call (see sync_timings)

    def __post_init__(self) -> None:
        self.clock = StepClock(self.device, sync=self.sync_timings)
        self._finite: torch.Tensor | None = None  # every loss of the pending group was finite (fp32/bf16)

    def set_lr(self, progress: float, shape: Any = None) -> float:
        """Apply the rate at ``progress`` epochs (× the multigrid factor of ``shape``) to every group."""
        lr = self.schedule.lr_at(progress, multigrid_scale(shape))
        set_lr(self.optimizer, lr)
        return lr

    def __call__(self, model: nn.Module, data: torch.Tensor, target: torch.Tensor, where: str,
                 share: float = 1.0, update: bool = True) -> StepOutput:
        """Forward and backward of one batch, its loss weighted by ``share`` of the optimiser step's; then, if
        ``update``, the optimiser step over the gradients summed since the last one. Under DDP the gradients
        are all-reduced only in the backward of an ``update`` batch (``no_sync`` before). ``where`` ('epoch E,
        iteration I') names the step for code that wraps it (the tests' signal hooks)."""
        if self.channels_last:
            data = data.contiguous(memory_format=torch.channels_last_3d)
        start = self.clock.mark()
        with contextlib.nullcontext() if update or not hasattr(model, "no_sync") else model.no_sync():
            with autocast(self.device, self.precision):
                output = model(data)
            loss = self.criterion(output.float(), target)
            middle = self.clock.mark()
            self.scaler.scale(loss * share if share != 1.0 else loss).backward()
        finite = torch.isfinite(loss.detach())
        self._finite = finite if self._finite is None else self._finite & finite
        ok, norm = self.update() if update else (None, None)
        self.timings = self.clock.add(start, middle, self.clock.mark())
        return StepOutput(output.detach().float(), loss.detach(), ok, norm)

    @property
    def pending(self) -> bool:
        """True while gradients of an optimiser step still to be taken are summed (``--accumulate-grad``)."""
        return self._finite is not None

    def update(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The optimiser step of the summed gradients: unscale and clip (``clip_grad_norm``), step, update the
        scale, zero the gradients. Returns ``(ok, norm before clipping)`` as device tensors: under fp16 ``ok``
        is False when the scaler skipped the step (its scale went down), under fp32/bf16 when a loss of the
        group (or the norm) was not finite. The fused optimisers take the scaler's skip decision on the device."""
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        scale = None
        if self.scaler.is_enabled():
            scale = self.scaler._scale.clone()  # GradScaler has no public accessor of the scale tensor
            prime_momentum(self.optimizer)
        norm = None
        if self.clip_grad_norm > 0 and params:
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        if params:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if scale is not None:
            ok = self.scaler._scale >= scale
        else:
            ok = self._finite if self._finite is not None else torch.ones((), dtype=torch.bool, device=self.device)
            ok = ok & torch.isfinite(norm) if norm is not None else ok
        self._finite = None
        if self.ema is not None:
            self.ema.update(ok=ok)  # a skipped step leaves the average
        return ok, norm

    def check(self, sums: dict[str, float], epoch: int, new: float = 0.0) -> None:
        """The non-finite policy on device counts read by the host (``sums`` of `RunningMetrics.read`, summed
        over ranks, so every rank decides alike): stop under fp32/bf16 or after more than ``max_nonfinite``
        fp16 steps in a row, else warn about the ``new`` skipped steps (those not reported before)."""
        if not sums["skipped_steps"]:
            return
        first, loss = int(sums["first_bad"]), sums["first_loss"]
        at = f"epoch {epoch + 1}, iteration {first}" if first >= 0 else f"epoch {epoch + 1}, on another rank"
        why = ("loss or gradients not finite" if first < 0 else
               f"loss is {loss}" if not math.isfinite(loss) else "gradients are not finite")
        stop = "training stopped, the last saved checkpoint is kept (lower --lr-base, check the data, or resume " \
               "with --resume-epoch auto)"
        if not self.scaler.is_enabled():
            raise NonFiniteLossError(f"{at}: {why} under {self.precision}; {stop}")
        if sums["max_run"] > self.max_nonfinite:
            raise NonFiniteLossError(f"{at}: {int(sums['max_run'])} consecutive non-finite fp16 steps (the first: "
                                     f"{why}); {stop}")
        if new:
            log.warning("epoch %d: %d step(s) skipped under fp16 (non-finite loss or gradients; the first at "
                        "iteration %d: %s), the scale backed off", epoch + 1, int(new), first, why)


def _average_gradients(params: list[torch.Tensor]) -> None:
    """DDP's gradient all-reduce by hand, for a group whose last batch (whose backward runs it) was empty."""
    world = get_world_size()
    if world > 1:
        for p in params:
            p.grad.copy_(all_reduce_sum(p.grad) / world)


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


def skipped_clips(loader: Any, reset: bool = False) -> int:
    """Corrupt/missing clips the loader's dataset replaced (0 if it does not count them); optionally reset."""
    dataset = getattr(loader, "dataset", None)
    if reset and callable(getattr(dataset, "reset_skipped", None)):
        dataset.reset_skipped()
    return int(getattr(dataset, "skipped", 0) or 0)


def train_one_epoch(model: nn.Module, loader: Any, step: TrainStep, epoch: int,
                    plan: Sequence[Any] | None = None, monitor: Monitor | None = None, start: int = 0,
                    to_device: DeviceBatches | None = None, meter: RunningMetrics | None = None) -> EpochResult:
    """Train ``model`` for one pass over ``loader``; ``epoch`` is 0-based (the log shows ``epoch + 1``);
    ``start``: the loader's first batch is step ``start`` of the epoch (a mid-epoch resume).

    ``plan`` holds each iteration's multigrid shape (its lr factor); without it every step has factor 1.
    ``to_device`` turns a loader batch into device tensors (default: a copy to ``step.device``); ``meter``
    holds the epoch's sums (the caller's, to save them mid-epoch; it may carry the sums before a resume).
    """
    to_device, monitor = to_device or DeviceBatches(step.device), monitor or Monitor()
    meter = meter or RunningMetrics(step.device)
    model.train()
    skipped_clips(loader, reset=True)
    total = len(plan) if plan is not None else len(loader)
    warned, lr, world = 0.0, None, get_world_size()
    with monitor.epoch(epoch, total, "train", meter, step.clock, start, reduce=True) as progress:
        for i, (read_s, batch) in enumerate(_batches(loader, to_device, all_ranks=True), start):
            lr = step.set_lr(epoch + i / total, plan[i] if plan is not None and i < len(plan) else None)
            share, update = micro_batch(i, start, total, step.accumulate)
            clips, shape = 0, None
            if batch is None:
                _skip_empty(f"epoch {epoch + 1}, iteration {i}")
                if update and step.pending:  # the group's earlier batches still make their step
                    _average_gradients([p for p in model.parameters() if p.grad is not None])
                    meter.commit(*step.update(), i)
            else:
                data, target = batch
                if step.targets is not None and step.targets.enabled:  # soft targets (B, K), mixed clips
                    data, target = step.targets(data, target, epoch, i)
                out = step(model, data, target, f"epoch {epoch + 1}, iteration {i}", share, update)
                meter.score(out.logits, hard_labels(target), out.loss, pending=True)
                if update:
                    meter.commit(out.ok, out.norm, i)
                clips, shape = data.shape[0], (data.shape[0] * world, *data.shape[1:])
            sums = progress.advance(read_s, clips, lr, shape, stepped=update)
            if sums is not None:
                step.check(sums, epoch, sums["skipped_steps"])
                warned += sums["skipped_steps"]
    sums = meter.read(reduce=True, full=True, skipped_clips=skipped_clips(loader))
    step.check(sums, epoch, sums["skipped_steps"] - meter.carried["skipped_steps"] - warned)
    return EpochResult.from_sums(sums, lr, meter.seconds())


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, device: torch.device, precision: str, epoch: int,
             monitor: Monitor | None = None, criterion: nn.Module | None = None,
             to_device: DeviceBatches | None = None) -> EpochResult:
    """Validation pass: sample-weighted loss/top-1/top-5 over the (rank-sharded) loader, summed over ranks;
    ``criterion`` returns per-row losses (default cross-entropy); rows with non-finite outputs are counted apart
    (`RunningMetrics`); ``to_device`` as in :func:`train_one_epoch` (default: a copy to ``device``)."""
    to_device, monitor = to_device or DeviceBatches(device), monitor or Monitor()
    criterion = criterion or nn.CrossEntropyLoss(reduction="none")
    meter, clock = RunningMetrics(device), StepClock(device)
    # The bare module: DDP's forward would broadcast buffers, a collective that hangs when ranks hold
    # different numbers of validation batches (the shards differ by up to one clip).
    model = unwrap_model(model)
    model.eval()
    skipped_clips(loader, reset=True)
    with monitor.epoch(epoch, len(loader), "val", meter, clock) as progress:
        for read_s, batch in _batches(loader, to_device):
            if batch is None:  # ranks hold different numbers of val batches: no agreement, no collective
                _skip_empty(f"validation after epoch {epoch + 1}")
                progress.advance(read_s, 0)
                continue
            data, target = batch
            start = clock.mark()
            with autocast(device, precision):
                output = model(data).float()
            meter.score(output, target, criterion(output, target))
            clock.add(start, clock.mark())
            progress.advance(read_s, data.shape[0])
    sums = meter.read(reduce=True, full=True, skipped_clips=skipped_clips(loader))
    return EpochResult.from_sums(sums, None, meter.seconds())
