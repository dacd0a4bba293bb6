"""torchvision's Kinetics-400 video ResNets (``torchvision.models.video``: r3d_18, mc3_18, r2plus1d_18).

https://pytorch.org/vision/stable/models.html#video-classification. Their keys are ours except where a conv
builder is a bare ``nn.Conv3d`` in torchvision and a Sequential here (``layerX.Y.convZ.0.weight`` vs
``.convZ.0.0.weight``): every R3D stage, and layer1 of MC3 (its 1x3x3 stages are bare convs in both).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from network.pretrained.common import depth_of, rename

NAME = "torchvision"
ARCHS = {"r3d_18": "tv_r3d_18", "mc3_18": "tv_mc3_18", "r2plus1d_18": "tv_r2plus1d_18"}
_BARE_CONV = r"(layer{layers}\.\d+\.conv[12])\.0\.weight"


def recognise(state: Mapping[str, torch.Tensor]) -> str | None:
    """``'r3d_18'``, ``'mc3_18'``, ``'r2plus1d_18'`` (or ``r3d_34``-like names of depths we do not import) for a
    torchvision-layout file of basic blocks; None otherwise."""
    if "stem.0.weight" not in state or "layer1.0.conv3.0.weight" in state:
        return None
    depth = depth_of(state, bottleneck=False)
    if "layer1.0.conv1.0.0.weight" in state and "stem.3.weight" in state:
        return f"r2plus1d_{depth}"
    first = state.get("layer1.0.conv1.0.weight")
    if first is None or first.dim() != 5:
        return None
    later = state.get("layer2.0.conv1.0.weight")
    mixed = later is not None and later.dim() == 5 and later.shape[2] == 1
    return f"{'mc3' if mixed else 'r3d'}_{depth}"


def to_ours(state: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """The file's tensors under our names for ``arch``."""
    if arch.startswith("r2plus1d"):
        return dict(state)
    layers = "1" if arch.startswith("mc3") else "[1-4]"
    return rename(state, [(_BARE_CONV.format(layers=layers), r"\1.0.0.weight")])
