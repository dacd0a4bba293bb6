"""The model contract every network of the zoo keeps (timm's): classifier access and pooled features.

``get_classifier()`` returns the head (``fc``, the original's key), ``reset_classifier(n)`` replaces it by a
fresh ``n``-way one, and ``forward_features(x)`` gives the pooled ``(B, F)`` features the head reads, so
optimiser groups, checkpoint loading and inference never reach for ``model.fc`` by name.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ClassifierMixin:
    """Mixin for ``nn.Module`` networks whose head is the ``nn.Linear`` attribute ``classifier_attr``."""

    classifier_attr = "fc"

    def get_classifier(self) -> nn.Linear:
        """The classification head (``(B, F) -> (B, num_classes)``)."""
        return getattr(self, self.classifier_attr)

    @property
    def num_classes(self) -> int:
        return int(self.get_classifier().out_features)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a new ``num_classes``-way ``nn.Linear`` (PyTorch's default init), same device."""
        old = self.get_classifier()
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        setattr(self, self.classifier_attr, new.to(device=old.weight.device, dtype=old.weight.dtype))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every network defines it
        raise NotImplementedError


def classifier_of(model: nn.Module) -> nn.Module | None:
    """``model.get_classifier()`` for zoo networks; for other modules the last ``nn.Linear`` (or None)."""
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        return getter()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None
