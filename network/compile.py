"""Compile the convolutional backbone of a network with ``torch.compile``, leaving the recurrent cells eager.

LSTMs and GRUs break graphs and gain nothing from Inductor, so :func:`compile_backbone` compiles every largest
sub-module whose subtree holds no recurrent cell (stem, conv paths, downsampling, classifier) in place
(``nn.Module.compile``: state_dict keys do not change) and leaves the SR blocks and MTNet's alignment cells
as they are.
"""
from __future__ import annotations

import logging

import torch.nn as nn

log = logging.getLogger(__name__)


def _has_recurrent(module: nn.Module) -> bool:
    return any(isinstance(m, nn.RNNBase) for m in module.modules())


def compile_targets(model: nn.Module) -> list[str]:
    """Names of the largest sub-modules without a recurrent cell (the whole model when it has none)."""
    if not _has_recurrent(model):
        return [""]
    names: list[str] = []

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, nn.RNNBase):
                continue
            if _has_recurrent(child):
                walk(full, child)
            elif any(True for _ in child.parameters()) or list(child.children()):
                names.append(full)

    walk("", model)
    return names


def compile_backbone(model: nn.Module, backend: str = "inductor") -> list[str]:
    """Compile :func:`compile_targets` of ``model`` in place with ``backend``; returns their names.

    A failure to set up compilation is one WARNING and leaves the model eager; errors at the first call fall
    back to eager through ``torch._dynamo.config.suppress_errors``.
    """
    import torch._dynamo  # noqa: PLC0415

    torch._dynamo.config.suppress_errors = True
    targets = compile_targets(model)
    try:
        for name in targets:
            model.get_submodule(name).compile(backend=backend)
    except Exception as exc:  # torch.compile raises many kinds (missing compiler, unsupported backend, ...)
        log.warning("--compile: %s (%s); training runs eagerly", exc.__class__.__name__, str(exc).splitlines()[0]
                    if str(exc) else "")
        for name in targets:
            sub = model.get_submodule(name)
            sub._compiled_call_impl = None  # undo a partial compile
        return []
    log.info("--compile: %d sub-modules compiled with %s, recurrent cells eager", len(targets), backend)
    return targets
