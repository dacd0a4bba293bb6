"""Load (partial) checkpoints into a model and produce unwrapped state_dicts for saving.

Original checkpoints hold a DataParallel state_dict (every key starts with ``module.``) inside
``{'epoch', 'state_dict', 'optimizer'}``; ``torch.compile`` adds ``_orig_mod.``. Loading strips both, copies
entries whose name and shape match, and logs one line of what happened. Released ``srtg_*`` checkpoints were
trained by a factory that built plain backbones (spec 5.1), so they may lack every ``sar.*`` key: the report says
which SR blocks start fresh.
"""
from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn as nn

# What torch.load(weights_only=True) raises on a file that is not a readable checkpoint: a text or truncated file
# makes the unpickler fail with KeyError/IndexError as well.
LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, LookupError, TypeError)

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadReport:
    """Key lists of one ``load_partial`` call."""

    loaded: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # same name, different shape: skipped
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint

    @property
    def fresh_sr_blocks(self) -> list[str]:
        """SR blocks (e.g. ``layer1.0.sar``) none of whose weights came from the checkpoint."""
        blocks = sorted({k.split(".sar.")[0] + ".sar" for k in self.missing + self.mismatched if ".sar." in k})
        return [b for b in blocks if not any(k.startswith(b + ".") for k in self.loaded)]

    def summary(self) -> str:
        """The one-line log message."""
        line = (f"loaded {len(self.loaded)} tensors, skipped {len(self.mismatched)} (shape mismatch), "
                f"{len(self.unexpected)} unexpected, {len(self.missing)} missing")
        examples = [f"{name} e.g. {keys[0]}" for name, keys in
                    (("mismatch", self.mismatched), ("unexpected", self.unexpected), ("missing", self.missing))
                    if keys and not (name == "missing" and self._missing_only_sr())]
        if examples:
            line += " (" + "; ".join(examples) + ")"
        fresh = self.fresh_sr_blocks
        if fresh:
            line += (f"; {len(fresh)} SR blocks start fresh (checkpoint has no recurrent weights for them: "
                     f"{_abbreviate(fresh)})")
        return line

    def _missing_only_sr(self) -> bool:
        return bool(self.missing) and all(".sar." in k for k in self.missing)


def _abbreviate(names: list[str], keep: int = 4) -> str:
    return ", ".join(names) if len(names) <= keep else ", ".join(names[:keep]) + f", ... ({len(names)} in all)"


def strip_wrappers(key: str) -> str:
    """``module._orig_mod.layer1.0...`` -> ``layer1.0...`` (DataParallel/DDP and torch.compile prefixes)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DataParallel/DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def unwrap_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict of a (possibly DDP-wrapped and/or compiled) model with plain keys, for checkpoints."""
    return {strip_wrappers(k): v for k, v in unwrap_model(model).state_dict().items()}


def load_partial(model: nn.Module, state_dict_or_checkpoint: Mapping, log: logging.Logger | None = logger
                 ) -> LoadReport:
    """Copy every checkpoint tensor whose (unwrapped) name and shape match into ``model``; returns the report.

    Accepts a raw state_dict or a checkpoint dict with a ``'state_dict'`` entry. Logs one INFO line (pass
    ``log=None`` to stay silent).
    """
    source = state_dict_or_checkpoint
    if "state_dict" in source and isinstance(source["state_dict"], Mapping):
        source = source["state_dict"]
    incoming = {strip_wrappers(k): v for k, v in source.items()}
    target = unwrap_model(model)
    own = target.state_dict()
    report = LoadReport()
    usable = {}
    for key, value in incoming.items():
        if key not in own:
            report.unexpected.append(key)
        elif not isinstance(value, torch.Tensor) or value.shape != own[key].shape:
            report.mismatched.append(key)
        else:
            usable[key] = value
            report.loaded.append(key)
    report.missing = [k for k in own if k not in incoming]
    target.load_state_dict(usable, strict=False)
    if log is not None:
        log.info("load_partial: %s", report.summary())
    return report
