"""Warnings that save a researcher's day: a loss that explodes, a batch larger than the data, a tiny val set."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

GROWTH_WARN = 100.0  # a loss this many times above the best one seen (or the chance loss) is an explosion


def check_data(train_clips: int, val_clips: int, batch_size: int, num_classes: int) -> list[str]:
    """Log (and return) a WARNING for set-ups that train or validate much less than they seem to."""
    problems = []
    if batch_size > train_clips:
        problems.append(f"--batch-size {batch_size} is larger than the {train_clips} training clips: every epoch is "
                        "one step of all clips; lower --batch-size")
    if val_clips < num_classes:
        problems.append(f"the validation set has {val_clips} clips for {num_classes} classes: its accuracy says "
                        "little (some classes are never tested)")
    for text in problems:
        log.warning(text)
    return problems


@dataclass
class LossWatch:
    """Per phase, the lowest epoch loss so far; warns when a loss turns non-finite or grows ~100x above it."""

    num_classes: int
    best: dict[str, float] = field(default_factory=dict)

    def observe(self, phase: str, epoch: int, loss: float) -> str | None:
        """Check the ``phase`` loss of (1-based) ``epoch``; returns the warning logged, if any."""
        if not math.isfinite(loss):
            text = f"Epoch [{epoch}] ({phase}): the loss is {loss}; lower --lr-base or check the data"
        else:
            reference = min(self.best.get(phase, math.inf), math.log(max(2, self.num_classes)))
            self.best[phase] = min(self.best.get(phase, math.inf), loss)
            if loss <= GROWTH_WARN * reference:
                return None
            text = (f"Epoch [{epoch}] ({phase}): the loss is {loss:.3g}, {math.log10(loss / reference):.1f} orders "
                    f"of magnitude above {reference:.3g} (the best so far or chance); the run is diverging: lower "
                    "--lr-base")
        log.warning(text)
        return text
