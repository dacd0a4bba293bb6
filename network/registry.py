"""Model registry: every architecture is registered where it is defined and built through one factory.

The original factory (``symbol_builder.get_symbol``) matched names by substring, so every ``srtg_*`` name built
the plain backbone, ``mtnet_xs`` built MTNet_s and unknown ``*r3d*`` names fell through to ``wide_r3d101_2``.
Here a name builds exactly the constructor it names; lookup is case-insensitive.
"""
from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from network.config import InputSpec, input_spec_of

ModelFn = Callable[..., nn.Module]

_MODELS: dict[str, ModelFn] = {}
# Documented aliases: the original README trains ``mtnet`` (which the original factory resolved to MTNet_m).
_ALIASES: dict[str, str] = {"mtnet": "mtnet_m"}


def register_model(fn: ModelFn) -> ModelFn:
    """Register ``fn`` under its lower-cased function name; a duplicate name is an error."""
    name = fn.__name__.lower()
    if name in _MODELS:
        raise ValueError(f"model '{name}' is registered twice ({_MODELS[name].__module__} and {fn.__module__})")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_MODELS)


def _resolve(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _MODELS:
        close = difflib.get_close_matches(key, list(_MODELS), n=5, cutoff=0.6)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown network '{name}'{hint} (see network.list_models() for all {len(_MODELS)} names)")
    return key


def create_model(name: str, num_classes: int = 400, **kwargs: Any) -> nn.Module:
    """Build the model called ``name`` (case-insensitive) with a ``num_classes``-way classifier."""
    return _MODELS[_resolve(name)](num_classes=num_classes, **kwargs)


def input_spec_for(name: str) -> InputSpec:
    """The input convention (``model.input_spec``) of network ``name``, read from a weightless build."""
    with torch.device("meta"):
        return input_spec_of(create_model(name, num_classes=1))


def build_model(name: str, num_classes: int, gates: bool = False, **gate_options: Any) -> nn.Module:
    """``create_model`` for a run: ``gates=True`` (and the gate's options) go to the ``srtg_*`` builders only.

    A non-SRTG network with ``gates=True`` is a one-line ``ValueError``.
    """
    if not gates:
        return create_model(name, num_classes=num_classes)
    if not _resolve(name).startswith("srtg_"):
        raise ValueError(f"--gates True needs an srtg_* network, not '{name}'")
    return create_model(name, num_classes=num_classes, gates=True, **gate_options)


def get_symbol(name: str, print_net: bool = False, **kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The original's factory signature: returns ``(model, input_config)`` with the mean/std of the model's input
    convention (``model.input_spec``: the original's for its networks, the publisher's for networks of public
    weights) and its ``channel_order``."""
    model = create_model(name, **kwargs)
    if print_net:
        logging.getLogger(__name__).info("Symbol:: Network Architecture:\n%s", model)
    spec = input_spec_of(model)
    return model, {"mean": list(spec.mean), "std": list(spec.std), "channel_order": spec.channel_order}
