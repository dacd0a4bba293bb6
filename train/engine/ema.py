"""Exponential moving average of the weights (``--ema-decay D``), as VideoMAE's ``--model_ema``.

After every optimiser step each floating-point entry of the model's ``state_dict`` (parameters *and* buffers,
so BatchNorm's running statistics are averaged too, as timm's ``ModelEmaV2`` defines it) moves
``ema = D·ema + (1-D)·value``; integer buffers (BatchNorm's ``num_batches_tracked``) are copied. The copy starts
equal to the model, lives on its device in eval mode without gradients, is validated beside it, and is saved in
checkpoints as ``ema_state_dict`` (same keys as ``state_dict``) so a resume continues it exactly and
``evaluate.py``/``predict.py``/``tools/export.py --weights ema`` can use it. The update is a few ``foreach``
kernels on the device; it reads nothing back to the host.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import torch
import torch.nn as nn

from network.weights import unwrap_model, unwrap_state_dict
from train.results.checkpoint import EMA_KEY

log = logging.getLogger(__name__)


class ModelEma:
    """The averaged copy of ``model`` (a DDP- or compile-wrapped model is unwrapped first); :meth:`update`
    follows ``model`` unless it is given another (the same weights under a wrapper)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema-decay must be in (0, 1) to keep an average, got {decay}")
        self.decay = float(decay)
        self.source = model
        self.module = copy.deepcopy(unwrap_model(model)).eval().requires_grad_(False)

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple]]:
        source = unwrap_state_dict(model)
        floats_e, floats_m, others = [], [], []
        for key, mine in self.module.state_dict().items():
            theirs = source[key]
            if mine.is_floating_point():
                floats_e.append(mine)
                floats_m.append(theirs.detach())
            else:
                others.append((mine, theirs))
        return floats_e, floats_m, others

    @torch.no_grad()
    def update(self, model: nn.Module | None = None, ok: torch.Tensor | None = None) -> None:
        """One step of the average toward the current weights and buffers. ``ok``: a 0-d bool device tensor,
        False when the optimiser step was skipped (fp16 overflow); the average then keeps its floats, decided
        on the device without a host sync."""
        floats_e, floats_m, others = self._pairs(model if model is not None else self.source)
        if floats_e:  # ema + (1-D)(w - ema) = D·ema + (1-D)·w
            if ok is None:
                torch._foreach_lerp_(floats_e, floats_m, 1.0 - self.decay)
            else:
                weight = ok.to(torch.float32) * (1.0 - self.decay)
                torch._foreach_lerp_(floats_e, floats_m, [weight] * len(floats_e))
        for mine, theirs in others:
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, with the model's plain keys."""
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore a saved average (strict: the same network)."""
        self.module.load_state_dict(state, strict=True)


def restore_ema(ema: ModelEma, ckpt: Mapping | None, mode: str, path: object) -> str:
    """Continue the checkpoint's average on a resume; otherwise (scratch, ``--pretrained_3d``, or a checkpoint
    trained without EMA) the average starts at the current weights. Returns what happened, for the log."""
    saved = (ckpt or {}).get(EMA_KEY) if mode == "resume" else None
    if saved:
        ema.load_state_dict(saved)
        return f"EMA of the weights (decay {ema.decay:g}) resumed from `{path}'"
    if mode == "resume":
        log.warning("`%s' holds no EMA weights (trained without --ema-decay): the average starts at its weights",
                    path)
    return f"EMA of the weights (decay {ema.decay:g}) starts at the model's weights"
