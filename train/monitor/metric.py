"""Training/validation meters with the original's names (``loss-ce``, ``top1``, ``top5``, ``batch_size``, ``lr``).

Accuracies and the loss are sample-weighted sums (batch sizes vary 32× under multigrid), and
:meth:`MetricList.reduce` sums them over all ranks before they are read (docs/differences.md#33).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from train.distributed import all_reduce_sum


class EvalMetric:
    """Base meter: ``sum_metric / num_inst`` (NaN before the first update), as the original's EvalMetric."""

    additive = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.sum_metric: float = 0.0
        self.num_inst: int = 0

    def update(self, preds: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor | float | None,
               lr: float | None, batch_size: Sequence[int] | None) -> None:
        raise NotImplementedError

    def get(self) -> tuple[str, float]:
        value = self.sum_metric / self.num_inst if self.num_inst else math.nan
        return self.name, value

    def get_name_value(self) -> list[tuple[str, Any]]:
        return [self.get()]


class Accuracy(EvalMetric):
    """Fraction of samples whose label is among the ``topk`` largest logits (``preds`` (B, K), ``labels`` (B,)).

    ``topk`` is clipped to the number of classes, so top-5 on a 3-class problem is 1.0 rather than an error.
    """

    def __init__(self, name: str = "top1", topk: int = 1) -> None:
        self.topk = topk
        super().__init__(name)

    def update(self, preds, labels, loss=None, lr=None, batch_size=None) -> None:
        k = min(self.topk, preds.shape[1])
        top = preds.detach().topk(k, dim=1).indices
        correct = (top == labels.view(-1, 1)).any(dim=1)
        self.sum_metric += float(correct.sum().item())
        self.num_inst += int(labels.numel())


class Loss(EvalMetric):
    """Sample-weighted mean of the per-batch mean loss."""

    def __init__(self, name: str = "loss-ce") -> None:
        super().__init__(name)

    def update(self, preds, labels, loss=None, lr=None, batch_size=None) -> None:
        if loss is None:
            return
        n = int(labels.numel())
        self.sum_metric += float(loss) * n
        self.num_inst += n


class _Last(EvalMetric):
    """Holds the last value it was given (not averaged, not reduced)."""

    additive = False

    def reset(self) -> None:
        super().reset()
        self.value: Any = None

    def get(self) -> tuple[str, Any]:
        return self.name, self.value


class BatchSize(_Last):
    """The last batch shape ``(B, C, T, H, W)`` (B summed over ranks by the caller)."""

    def __init__(self, name: str = "batch_size") -> None:
        super().__init__(name)

    def update(self, preds=None, labels=None, loss=None, lr=None, batch_size=None) -> None:
        self.value = tuple(int(v) for v in batch_size) if batch_size is not None else None


class LearningRate(_Last):
    """The last learning rate."""

    def __init__(self, name: str = "lr") -> None:
        super().__init__(name)

    def update(self, preds=None, labels=None, loss=None, lr=None, batch_size=None) -> None:
        self.value = lr


class MetricList:
    """Fan updates out to several meters; ``get_name_value()`` lists ``(name, value)`` in order."""

    def __init__(self, *metrics: EvalMetric) -> None:
        self.metrics = list(metrics)

    def update(self, preds: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor | float | None = None,
               lr: float | None = None, batch_size: Sequence[int] | None = None) -> None:
        for metric in self.metrics:
            metric.update(preds, labels, loss, lr, batch_size)

    def reset(self) -> None:
        for metric in self.metrics:
            metric.reset()

    def get_name_value(self) -> list[tuple[str, Any]]:
        return [nv for metric in self.metrics for nv in metric.get_name_value()]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.get_name_value())

    @property
    def num_samples(self) -> int:
        """Samples seen by the first additive meter (after :meth:`reduce`: over all ranks)."""
        return next((m.num_inst for m in self.metrics if m.additive), 0)

    def reduce(self, device: torch.device | str = "cpu") -> None:
        """Sum the additive meters' ``(sum_metric, num_inst)`` over all ranks, in place (no-op at world 1)."""
        additive = [m for m in self.metrics if m.additive]
        if not additive:
            return
        local = torch.tensor([[m.sum_metric, m.num_inst] for m in additive], dtype=torch.float64, device=device)
        total = all_reduce_sum(local).cpu()
        for metric, (s, n) in zip(additive, total.tolist()):
            metric.sum_metric, metric.num_inst = float(s), int(round(n))


def default_metrics() -> MetricList:
    """The original's metric set: ``loss-ce``, ``top1``, ``top5``, ``batch_size``, ``lr``."""
    return MetricList(Loss("loss-ce"), Accuracy("top1", 1), Accuracy("top5", 5), BatchSize("batch_size"),
                      LearningRate("lr"))
