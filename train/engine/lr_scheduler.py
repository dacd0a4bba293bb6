"""Learning-rate schedules as pure functions of training progress in epochs, and their factory.

A schedule is anything with ``lr_at(progress, scale=1.0) -> float`` and ``state_dict()``; ``progress`` is
``epoch + i / iterations_in_epoch`` (0-based, fractional), so the rate of a step does not depend on how many
iterations an epoch has: a resume after a change of batch size or data-set size decays at exactly the epochs
the arguments say. ``scale`` is the multigrid factor of the step (:func:`multigrid_scale`). The original
halved the rate every quarter epoch even without multigrid, one iteration late; the original README says decay at
``--lr-steps`` (docs/differences.md#27), which :class:`MultiStep` does.
"""
from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

from data.pipeline.multigrid import LONG_CYCLE, StepShape

logger = logging.getLogger(__name__)

MIN_LR = 1e-6  # the original's floor on the returned rate
WARMUP_START = 0.1  # warm-up starts at this fraction of the schedule's rate


class Schedule(Protocol):
    """What the training step needs of a learning-rate schedule."""

    def lr_at(self, progress: float, scale: float = 1.0) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...


def multigrid_scale(shape: StepShape | Sequence[int] | None) -> float:
    """The linear-scaling factor of a step's batch: its long-cycle batch multiplier over the largest one (8).

    ``--lr-base`` is the rate of the largest long-cycle batch (8B), so the stages of 4B/2B/B get ½/¼/⅛ of it
    (the original's quarter-epoch halving); short cycles keep the rate, and without long cycles it is 1.
    """
    stage = getattr(shape, "long_stage", None)
    if stage is None:
        return 1.0
    return LONG_CYCLE[stage][0] / max(mult for mult, _, _ in LONG_CYCLE)


class _Base:
    """Shared parts: base rate, linear warm-up over ``warmup_epochs``, the floor, and the state dict."""

    kind = ""

    def __init__(self, base_lr: float, warmup_epochs: float = 0.0, min_lr: float = MIN_LR) -> None:
        if not base_lr > 0:
            raise ValueError(f"base learning rate must be > 0, got {base_lr}; e.g. --lr-base 0.1")
        if warmup_epochs < 0:
            raise ValueError(f"--lr-warmup-epochs must be >= 0, got {warmup_epochs}")
        self.base_lr, self.warmup_epochs, self.min_lr = float(base_lr), float(warmup_epochs), float(min_lr)

    def factor_at(self, progress: float) -> float:
        raise NotImplementedError

    def lr_at(self, progress: float, scale: float = 1.0) -> float:
        """The rate at ``progress`` epochs with multigrid factor ``scale``: a pure function."""
        lr = self.base_lr * self.factor_at(progress)
        if progress < self.warmup_epochs:
            lr *= WARMUP_START + (1.0 - WARMUP_START) * progress / self.warmup_epochs
        return max(self.min_lr, lr * scale)

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_lr": self.base_lr, "warmup_epochs": self.warmup_epochs,
                "min_lr": self.min_lr}

    def state_dict(self) -> dict[str, Any]:
        """The settings (saved in checkpoints under ``'scheduler'``); there is no counter to restore."""
        return self.settings()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Compare a saved schedule with this one: differences are logged as a WARNING, the arguments win.

        Checkpoints of earlier versions also hold ``step_counter``/``iterations_per_epoch``, which are ignored:
        progress comes from the epoch and the position in it.
        """
        mine = self.settings()
        changed = [f"{k}: {state[k]} -> {v}" for k, v in mine.items() if k in state and state[k] != v]
        if changed:
            logger.warning("the lr schedule differs from the checkpoint's; using the arguments (%s)",
                           "; ".join(changed))


class MultiStep(_Base):
    """``base × factor^k`` with k the number of ``steps`` (epochs) reached; decays at the start of epoch s."""

    kind = "multistep"

    def __init__(self, base_lr: float, steps: Sequence[int], factor: float, warmup_epochs: float = 0.0,
                 min_lr: float = MIN_LR) -> None:
        super().__init__(base_lr, warmup_epochs, min_lr)
        steps = list(steps)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps):
            raise ValueError(f"lr steps must be epochs given as ints >= 1, got {steps}; e.g. --lr-steps 40 60 75")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"lr steps must be strictly increasing, got {steps}; e.g. --lr-steps 40 60 75")
        if not 0 < factor <= 1:
            raise ValueError(f"lr factor must be in (0, 1] so the rate does not grow, got {factor}")
        self.steps, self.factor = steps, float(factor)

    def decays_at(self, progress: float) -> int:
        """How many lr steps have been reached at ``progress`` epochs."""
        return bisect.bisect_right(self.steps, progress)

    def factor_at(self, progress: float) -> float:
        return self.factor ** self.decays_at(progress)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "steps": list(self.steps), "factor": self.factor}


class Cosine(_Base):
    """Half a cosine from ``base`` (after warm-up) to 0 at ``end_epoch``."""

    kind = "cosine"

    def __init__(self, base_lr: float, end_epoch: int, warmup_epochs: float = 0.0, min_lr: float = MIN_LR) -> None:
        super().__init__(base_lr, warmup_epochs, min_lr)
        if end_epoch <= warmup_epochs:
            raise ValueError(f"--end-epoch {end_epoch} must exceed --lr-warmup-epochs {warmup_epochs}")
        self.end_epoch = int(end_epoch)

    def factor_at(self, progress: float) -> float:
        start = self.warmup_epochs
        t = min(1.0, max(0.0, (progress - start) / (self.end_epoch - start)))
        return 0.5 * (1.0 + math.cos(math.pi * t))

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "end_epoch": self.end_epoch}


def build_schedule(kind: str, base_lr: float, *, steps: Sequence[int] = (), factor: float = 0.1,
                   end_epoch: int = 1, warmup_epochs: float = 0.0) -> _Base:
    """The schedule ``--lr-schedule kind`` (``multistep`` or ``cosine``)."""
    if kind == "multistep":
        return MultiStep(base_lr, steps, factor, warmup_epochs)
    if kind == "cosine":
        return Cosine(base_lr, end_epoch, warmup_epochs)
    raise ValueError(f"--lr-schedule '{kind}' is not one of multistep, cosine")
