"""kenshohara/3D-ResNets-PyTorch ResNets (Hara et al., CVPR 2018; weights of the 2020 release: K700, K700+MiT,
K400, ...), ``resnet-18``/``resnet-34`` with the default shortcut B.

https://github.com/kenshohara/3D-ResNets-PyTorch. Files hold ``{'epoch', 'arch', 'state_dict', 'optimizer'}``
with the publisher's names: ``conv1``/``bn1`` for the stem, ``layerX.Y.conv{1,2}`` and ``bn{1,2}`` inside a
block. Their network is ours with a 7x7x7 stem conv (``kr_r3d_*``).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from network.pretrained.common import depth_of, rename

NAME = "3d-resnets"
ARCHS = {"r3d_18": "kr_r3d_18", "r3d_34": "kr_r3d_34"}
RULES = [
    (r"conv1\.weight", "stem.0.weight"),
    (r"bn1\.(\w+)", r"stem.1.\1"),
    (r"(layer\d\.\d+)\.conv([12])\.weight", r"\1.conv\2.0.0.weight"),
    (r"(layer\d\.\d+)\.bn([12])\.(\w+)", r"\1.conv\2.1.\3"),
]


def recognise(state: Mapping[str, torch.Tensor]) -> str | None:
    """``'r3d_<depth>'`` for a 3D-ResNets file (``r3d_50``-like for its bottleneck depths), None otherwise."""
    if "conv1.weight" not in state or "bn1.running_mean" not in state or "layer1.0.bn1.weight" not in state:
        return None
    return f"r3d_{depth_of(state, bottleneck='layer1.0.conv3.weight' in state)}"


def to_ours(state: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """The file's tensors under our names (``conv1`` -> ``stem.0``, ``layer1.0.bn2`` -> ``layer1.0.conv2.1``)."""
    return rename(state, RULES)
