"""Multi-step learning-rate schedule in iterations: ``lr_base × factor^k × scale``.

``k`` is the number of ``--lr-steps`` epochs already reached, ``scale`` the multigrid factor of the step
(``data.multigrid.lr_scale``: 1 without long cycles). Original did: decay by ``factor`` at the lr steps *and*
halve the lr at every quarter of every epoch, also without multigrid, with the lr of iteration i+1 used at
iteration i; the README says: decay at the epochs in ``--lr-steps``; we do the README's decay, with the
quarter-epoch halving only as the long-cycle batch scaling (passed in as ``scale``) and no off-by-one.
"""
from __future__ import annotations

import bisect
import logging
from typing import Any, Sequence

logger = logging.getLogger(__name__)


class MultiFactorScheduler:
    """Learning rate of iteration ``i``: ``max(min_lr, base_lr × factor^k × scale)``.

    ``steps`` are epochs (strictly increasing ints ≥ 1): from the first iteration of epoch ``e`` (0-based,
    i.e. after ``e`` completed epochs) the rate is multiplied by ``factor``; in iterations that is
    ``e × iterations_per_epoch``, which is constant because the multigrid plan depends only on the data set
    size. ``lr_at`` is a pure function of the iteration; ``update`` returns the rate of the current iteration
    and advances the counter. ``min_lr`` is the original's 1e-6 floor on the returned rate.
    """

    def __init__(self, base_lr: float, steps: Sequence[int], factor: float, iterations_per_epoch: int,
                 step_counter: int = 0, min_lr: float = 1e-6) -> None:
        steps = list(steps)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps):
            raise ValueError(f"lr steps must be epochs given as ints >= 1, got {steps}; e.g. --lr-steps 40 60 75")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"lr steps must be strictly increasing, got {steps}; e.g. --lr-steps 40 60 75")
        if not 0 < factor <= 1:
            raise ValueError(f"lr factor must be in (0, 1] so the rate does not grow, got {factor}; e.g. --lr-factor 0.1")
        if not base_lr > 0:
            raise ValueError(f"base learning rate must be > 0, got {base_lr}; e.g. --lr-base 0.1")
        if int(iterations_per_epoch) < 1:
            raise ValueError(f"iterations_per_epoch must be >= 1, got {iterations_per_epoch}")
        if step_counter < 0:
            raise ValueError(f"step_counter must be >= 0, got {step_counter}")
        self.base_lr = float(base_lr)
        self.steps = steps
        self.factor = float(factor)
        self.iterations_per_epoch = int(iterations_per_epoch)
        self.step_counter = int(step_counter)
        self.min_lr = float(min_lr)
        self.last_lr = self.lr_at(self.step_counter)
        self._level = self.decays_at(self.step_counter)
        nxt = self.iteration_steps[self._level] if self._level < len(steps) else "Inf"
        logger.info(f"Iter {self.step_counter}: start with learning rate: {self.base_lr * self.factor ** self._level:.5e} "
                    f"(next lr step: {nxt})")

    @property
    def iteration_steps(self) -> list[int]:
        """The lr steps in iterations (``epoch × iterations_per_epoch``)."""
        return [s * self.iterations_per_epoch for s in self.steps]

    def decays_at(self, iteration: int) -> int:
        """How many lr steps have been reached at ``iteration`` (0-based)."""
        return bisect.bisect_right(self.iteration_steps, iteration)

    def lr_at(self, iteration: int, scale: float = 1.0) -> float:
        """The learning rate of (0-based) ``iteration`` with multigrid factor ``scale``: a pure function."""
        return max(self.min_lr, self.base_lr * self.factor ** self.decays_at(iteration) * scale)

    def update(self, scale: float = 1.0) -> float:
        """The rate of the current iteration (logged when an lr step is passed); advances the counter."""
        level = self.decays_at(self.step_counter)
        if level != self._level:
            self._level = level
            its = self.iteration_steps
            end = its[level] if level < len(its) else "Inf"
            logger.info(f"Iter: {self.step_counter}, change learning rate to {self.base_lr * self.factor ** level:.5e} "
                        f"for step [{self.step_counter}:{end})")
        self.last_lr = self.lr_at(self.step_counter, scale)
        self.step_counter += 1
        return self.last_lr

    def get_lr(self) -> float:
        """The rate returned by the last ``update`` (or of the starting iteration before any update)."""
        return self.last_lr

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (saved in checkpoints under ``'scheduler'``)."""
        return {"base_lr": self.base_lr, "steps": list(self.steps), "factor": self.factor,
                "iterations_per_epoch": self.iterations_per_epoch, "step_counter": self.step_counter,
                "min_lr": self.min_lr, "last_lr": self.last_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``: the saved schedule wins; differing settings are logged as a warning."""
        changed = [f"{k}: {getattr(self, k)} -> {state[k]}" for k in
                   ("base_lr", "steps", "factor", "iterations_per_epoch", "min_lr")
                   if k in state and state[k] != getattr(self, k)]
        if changed:
            logger.warning("lr schedule restored from the checkpoint overrides the arguments (" + "; ".join(changed) + ")")
        self.base_lr = float(state.get("base_lr", self.base_lr))
        self.steps = list(state.get("steps", self.steps))
        self.factor = float(state.get("factor", self.factor))
        self.iterations_per_epoch = int(state.get("iterations_per_epoch", self.iterations_per_epoch))
        self.min_lr = float(state.get("min_lr", self.min_lr))
        self.step_counter = int(state["step_counter"])
        self._level = self.decays_at(self.step_counter)
        self.last_lr = float(state.get("last_lr", self.lr_at(self.step_counter)))
