"""Optimiser: SGD (momentum 0.9, Nesterov, weight decay 1e-4, as the original) or AdamW, over table-driven groups.

Groups are chosen by *module type* from :data:`GROUP_RULES`: with ``--fine-tune`` the backbone gets 0.6× the
lr, the classifier (``model.get_classifier()``) 1× and recurrent cells (LSTM, GRU) 0.5×, as the original
README describes; without fine-tuning everything trains at 1× (docs/differences.md#28). With
``--no-decay-norm-bias`` each of those groups is split in two: its parameters of more than one dimension keep
``--weight-decay``, its 1-D ones (normalisation weights, biases, gate scalars) get none, as PySlowFast,
PyTorchVideo and VideoMAE do; the split groups keep the rule's lr multiplier. Both optimisers use torch's fused
kernel (one kernel over all tensors) on CPU and CUDA.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn

from network.contract import classifier_of

log = logging.getLogger(__name__)

RECURRENT_TYPES: tuple[type[nn.Module], ...] = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)


@dataclass(frozen=True)
class GroupRule:
    """One parameter group: its name and lr multiplier with and without ``--fine-tune``."""

    name: str
    fine_tune_mult: float
    scratch_mult: float


GROUP_RULES: dict[str, GroupRule] = {
    "base": GroupRule("base", 0.6, 1.0),   # pretrained backbone (convolutions, norms)
    "new": GroupRule("new", 1.0, 1.0),     # the classifier head `fc`, re-initialised for the new classes
    "rec": GroupRule("rec", 0.5, 1.0),     # recurrent cells (SRTG's LSTM, MTNet's GRU)
}

MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
ADAMW_BETA2 = 0.999  # torch's default; --momentum is AdamW's beta1
FUSED_DEVICES = ("cpu", "cuda")  # devices with fused SGD and AdamW kernels
NO_DECAY_SUFFIX = "_no_decay"


def group_of(module: nn.Module, head_modules: set[int]) -> str:
    """Rule name for the parameters owned directly by ``module``."""
    if id(module) in head_modules:
        return "new"
    if isinstance(module, RECURRENT_TYPES):
        return "rec"
    return "base"


def decays(param: torch.Tensor) -> bool:
    """Whether ``--no-decay-norm-bias`` keeps weight decay on ``param``: only tensors of two or more dimensions
    (convolution, linear and recurrent weight matrices); norms' weights, biases and other 1-D tensors get none."""
    return param.ndim > 1


def param_groups(model: nn.Module, fine_tune: bool, no_decay_norm_bias: bool = False,
                 weight_decay: float = WEIGHT_DECAY) -> list[dict]:
    """Parameter groups (``params``, ``name``, ``lr_mult``, ``weight_decay``, ``param_names``) in the order
    base, new, rec; with ``no_decay_norm_bias`` each is followed by its ``<name>_no_decay`` part (decay 0).

    Empty groups are dropped. Frozen parameters (``requires_grad=False``) are left out.
    """
    head = classifier_of(model)
    head_modules = {id(m) for m in head.modules()} if head is not None else set()
    buckets: dict[str, list[tuple[str, nn.Parameter]]] = {name: [] for name in GROUP_RULES}
    for module_name, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                full = f"{module_name}.{pname}" if module_name else pname
                buckets[group_of(module, head_modules)].append((full, param))
    groups = []
    for name, rule in GROUP_RULES.items():
        mult = rule.fine_tune_mult if fine_tune else rule.scratch_mult
        parts = {name: (buckets[name], weight_decay)}
        if no_decay_norm_bias:
            parts = {name: ([(n, p) for n, p in buckets[name] if decays(p)], weight_decay),
                     name + NO_DECAY_SUFFIX: ([(n, p) for n, p in buckets[name] if not decays(p)], 0.0)}
        for part, (members, decay) in parts.items():
            if members:
                groups.append({"params": [p for _, p in members], "name": part, "lr_mult": mult,
                               "weight_decay": decay, "param_names": [n for n, _ in members]})
    return groups


def describe_groups(groups: Iterable[dict]) -> str:
    """One line per group: name, multiplier, parameter count and the first few parameter names."""
    lines = []
    for g in groups:
        names = g["param_names"]
        count = sum(p.numel() for p in g["params"])
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        lines.append(f"  group '{g['name']}': lr x{g['lr_mult']:g}, weight decay {g.get('weight_decay', 0):g}, "
                     f"{len(names)} tensors, {count:,} params ({shown})")
    return "\n".join(lines)


OPTIMIZER_TYPES: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


def build_optimizer(model: nn.Module, lr: float, fine_tune: bool = False, momentum: float = MOMENTUM,
                    weight_decay: float = WEIGHT_DECAY, nesterov: bool = True, *, name: str = "sgd",
                    no_decay_norm_bias: bool = False) -> torch.optim.Optimizer:
    """``name`` ('sgd' or 'adamw', ``--optimizer``) over :func:`param_groups`; each group's lr is
    ``lr * lr_mult``. SGD uses ``momentum`` (Nesterov); AdamW uses it as beta1 (``nesterov`` does not apply).
    The groups are logged."""
    if name not in OPTIMIZER_TYPES:
        raise ValueError(f"--optimizer '{name}' is not one of {', '.join(OPTIMIZER_TYPES)}")
    groups = param_groups(model, fine_tune, no_decay_norm_bias, weight_decay)
    for g in groups:
        g["lr"] = lr * g["lr_mult"]
    fused = fusable(p for g in groups for p in g["params"])
    if name == "adamw":
        settings = {"betas": (momentum, ADAMW_BETA2)}
        shown = f"AdamW(betas=({momentum:g}, {ADAMW_BETA2:g}))"
    else:
        settings = {"momentum": momentum, "nesterov": nesterov}
        shown = f"SGD(momentum={momentum:g}, nesterov={nesterov})"
    log.info("Optimiser: %s, fused=%s, fine-tune=%s, groups:\n%s", shown, fused, fine_tune, describe_groups(groups))
    for g in groups:
        del g["param_names"]
    return OPTIMIZER_TYPES[name](groups, lr=lr, weight_decay=weight_decay, fused=fused, **settings)


def fusable(params: Iterable[torch.Tensor]) -> bool:
    """True when every parameter is a float tensor on a device with fused SGD and AdamW kernels (CPU, CUDA).

    The fused update is one kernel over all tensors: 19 ms instead of 45-85 ms per step for srtg_r3d_18's 44M
    parameters on 2 CPU threads (docs/performance.md), with the same values as the per-tensor loop.
    """
    params = list(params)
    return bool(params) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's lr = ``lr * group['lr_mult']`` (the original's ``adjust_learning_rate``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
