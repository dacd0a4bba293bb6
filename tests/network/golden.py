"""The reference data's deterministic weight fill (``meta.golden_rule``) and output summaries."""
from __future__ import annotations

import math
import zlib

import torch
import torch.nn as nn


def golden_tensor(name: str, like: torch.Tensor) -> torch.Tensor:
    """The value the golden rule assigns to the state_dict entry ``name`` shaped like ``like``."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    shape = tuple(like.shape)
    if name.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if name.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g)
    if name.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if len(shape) >= 2:
        numel = math.prod(shape)
        return torch.randn(shape, generator=g) * math.sqrt(1.0 / (numel // shape[0]))
    if name.endswith("weight"):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    return 0.1 * torch.randn(shape, generator=g)


@torch.no_grad()
def golden_fill(model: nn.Module) -> nn.Module:
    """Fill every state_dict entry of ``model`` by the golden rule (in place); returns the model in eval mode."""
    state = model.state_dict()
    model.load_state_dict({k: golden_tensor(k, v) for k, v in state.items()})
    return model.eval()


def golden_input(size: int = 112, frames: int = 16) -> torch.Tensor:
    """The reference input ``(1, 3, frames, size, size)`` drawn from seed 0."""
    return torch.randn((1, 3, frames, size, size), generator=torch.Generator().manual_seed(0))


def summarise(t: torch.Tensor) -> dict:
    """The reference summary of a tensor: first 8 values, sum, abs_sum, std, argmax."""
    flat = t.detach().double().flatten()
    return {"first8": flat[:8].tolist(), "sum": float(flat.sum()), "abs_sum": float(flat.abs().sum()),
            "std": float(flat.std()), "argmax": int(flat.argmax())}
