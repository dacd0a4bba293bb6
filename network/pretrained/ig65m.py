"""IG65M R(2+1)D-34 (Ghadiyaram et al. 2019), as converted from Caffe2 to PyTorch by moabitcoin/ig65m-pytorch.

https://github.com/moabitcoin/ig65m-pytorch (8- and 32-frame clips; IG65M pre-training and its Kinetics-400
fine-tuning). torchvision's key layout; Caffe2 (2+1)D widths in ``layer{2,3,4}.0.conv2`` (288/576/1152) tell it
apart from a torchvision-rule R(2+1)D-34 (230/460/921).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from network.blocks import midplanes_for
from network.pretrained.common import depth_of

NAME = "ig65m"
ARCHS = {"r2plus1d_34": "ig65m_r2plus1d_34"}


def recognise(state: Mapping[str, torch.Tensor]) -> str | None:
    """``'r2plus1d_<depth>'`` for an R(2+1)D file with Caffe2 widths, None otherwise."""
    conv = state.get("layer2.0.conv2.0.0.weight")
    if "stem.3.weight" not in state or conv is None or "layer1.0.conv3.0.weight" in state:
        return None
    if conv.shape[0] != midplanes_for(128, 128):
        return None
    return f"r2plus1d_{depth_of(state, bottleneck=False)}"


def to_ours(state: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """Same names as ours (torchvision's layout)."""
    return dict(state)
