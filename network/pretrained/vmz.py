"""VMZ's channel-separated networks (Tran et al., ICCV 2019), ir-CSN and ip-CSN, from VMZ's PyTorch release.

https://github.com/facebookresearch/VMZ (``pt/``: ir/ip-CSN-152 on IG65M or Sports1M, and their Kinetics-400
fine-tunings). torchvision's layout with expansion-4 bottlenecks; the depthwise conv is a bare ``nn.Conv3d``
there (``conv2.0.weight`` for ir, ``conv2.0.2.weight`` for ip) and a Sequential here (``.0.0``, ``.0.2.0``).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from network.pretrained.common import depth_of, rename

NAME = "vmz"
ARCHS = {f"{kind}_csn_{depth}": f"vmz_{kind}_csn_{depth}" for kind in ("ir", "ip") for depth in (50, 101, 152)}
RULES = [
    (r"(layer\d\.\d+\.conv2)\.0\.weight", r"\1.0.0.weight"),  # ir: the depthwise conv itself
    (r"(layer\d\.\d+\.conv2)\.0\.2\.weight", r"\1.0.2.0.weight"),  # ip: 1x1x1 conv, BN, depthwise conv
]


def recognise(state: Mapping[str, torch.Tensor]) -> str | None:
    """``'ir_csn_<depth>'`` or ``'ip_csn_<depth>'`` for a VMZ CSN file, None otherwise."""
    conv3 = state.get("layer1.0.conv3.0.weight")
    if "stem.0.weight" not in state or conv3 is None or conv3.shape[0] != 4 * conv3.shape[1]:
        return None
    depth = depth_of(state, bottleneck=True)
    ir = state.get("layer1.0.conv2.0.weight")
    if ir is not None and ir.dim() == 5 and ir.shape[1] == 1:
        return f"ir_csn_{depth}"
    return f"ip_csn_{depth}" if "layer1.0.conv2.0.2.weight" in state else None


def to_ours(state: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """The file's tensors under our names for ``arch``."""
    return rename(state, RULES[:1] if arch.startswith("ir") else RULES[1:])
