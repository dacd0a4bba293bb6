"""Video ResNets (R3D, R(2+1)D, ir-/ip-CSN) and their SRTG versions (an SR block after every residual block).

Every constructor is one registered line over two tables: ``FAMILIES`` (stem + conv builder) and ``DEPTHS``
(block + layers per stage). ``srtg_<name>`` is ``<name>`` with ``recursion=True``; unlike the original, it
accepts ``gates=``, ``gate_similarity=``, ``gate_temperature=`` (``network.gate``), ``place=``, ``recurrent=``
and ``sr_init=`` (the original hard-coded ``gates=False``; ``sr_init='identity'``, the default, starts the SR
multipliers near 1, ``'pytorch'`` is the original's init).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from network.blocks import (
    BasicBlock,
    BasicStem,
    Bottleneck,
    Conv2Plus1D,
    Conv3DDepthwise,
    Conv3DNoTemporal,
    Conv3DSimple,
    IPConv3DDepthwise,
    R2Plus1dStem,
    VMZIPConv3DDepthwise,
    init_weights,
)
from network.config import ORIGINAL_INPUT, InputSpec
from network.contract import ClassifierMixin
from network.gate import DEFAULT_SIMILARITY, DEFAULT_TEMPERATURE, check_temperature, get_similarity
from network.registry import register_model
from network.srtg import Squeeze_and_Recursion

Block = type[BasicBlock] | type[Bottleneck]

# family -> (stem, conv builder of each of the four stages)
FAMILIES: dict[str, tuple[type[nn.Module], tuple[type[nn.Module], ...]]] = {
    "r3d": (BasicStem, (Conv3DSimple,) * 4),
    "r2plus1d": (R2Plus1dStem, (Conv2Plus1D,) * 4),
    "ir_csn": (BasicStem, (Conv3DDepthwise,) * 4),
    "ip_csn": (BasicStem, (IPConv3DDepthwise,) * 4),
    "mc3": (BasicStem, (Conv3DSimple,) + (Conv3DNoTemporal,) * 3),  # torchvision's mixed convolutions
    "vmz_ip_csn": (BasicStem, (VMZIPConv3DDepthwise,) * 4),
}
# The stem's max pool: the original's halves T, H and W; VMZ's CSN halves H and W; torchvision has none.
STEM_POOLS = ("original", "spatial", "none")
DEPTHS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
    200: (Bottleneck, (3, 24, 36, 3)),
}


class VideoResNet(ClassifierMixin, nn.Module):
    """Video ResNet ``(B,3,T,H,W) -> (B,num_classes)`` logits.

    stem -> MaxPool3d(3, 2, 1) over T, H and W (unlike torchvision's video ResNets, T is halved here) ->
    layer1..4 (64/128/256/512 channels, strides 1/2/2/2) -> global average pool -> fc(512). With
    ``recursion=True`` every block gets an SR block at ``place`` (``'final'``, as all original models).
    ``zero_init_residual`` zeroes the last BN of each residual branch (the original crashed on ``bn3``).
    ``sr_init`` initialises the SR blocks' recurrent cells (``Squeeze_and_Recursion(init=...)``).

    Options for networks of public weights (defaults = the original's): ``stem_pool`` (``STEM_POOLS``),
    ``stem_temporal_kernel`` (frames of the R3D/CSN stem conv), ``midplanes_rule`` (``'caffe2'``: R(2+1)D widths
    of VMZ/IG65M), ``bn_eps`` (every backbone BatchNorm; Caffe2 releases use 1e-3) and ``input_spec``
    (``model.input_spec``, the frames it expects; default the original's BGR convention).
    """

    def __init__(self, block: Block, conv_makers: list[type[nn.Module]], layers: list[int] | tuple[int, ...],
                 stem: type[nn.Module], num_classes: int = 400, groups: int = 1, width_per_group: int = 64,
                 zero_init_residual: bool = False, recursion: bool = False, gates: bool = False,
                 place: str = "final", recurrent: str = "lstm", sr_init: str = "identity",
                 stem_pool: str = "original", stem_temporal_kernel: int = 3, midplanes_rule: str = "original",
                 bn_eps: float | None = None, input_spec: InputSpec = ORIGINAL_INPUT) -> None:
        super().__init__()
        if not recursion and (gates or place != "final" or recurrent != "lstm"):
            raise ValueError("gates/place/recurrent only apply with recursion=True (the srtg_* models)")
        if stem_pool not in STEM_POOLS:
            raise ValueError(f"stem_pool must be one of {', '.join(STEM_POOLS)}, got '{stem_pool}'")
        self.inplanes = 64
        self.groups = groups
        self.base_width = width_per_group
        self.input_spec = input_spec
        sr = {"recursion": recursion, "gates": gates, "place": place, "recurrent": recurrent, "sr_init": sr_init}
        if midplanes_rule != "original":
            sr["midplanes_rule"] = midplanes_rule
        self.stem = stem(stem_temporal_kernel) if stem_temporal_kernel != 3 else stem()
        # use_softpool (SoftPool3d) of the original is dropped: no constructor set it.
        self.pool = {"original": lambda: nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
                     "spatial": lambda: nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
                     "none": nn.Identity}[stem_pool]()
        self.layer1 = self._make_layer(block, conv_makers[0], 64, layers[0], 1, sr)
        self.layer2 = self._make_layer(block, conv_makers[1], 128, layers[1], 2, sr)
        self.layer3 = self._make_layer(block, conv_makers[2], 256, layers[2], 2, sr)
        self.layer4 = self._make_layer(block, conv_makers[3], 512, layers[3], 2, sr)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._initialise_weights(zero_init_residual)
        if bn_eps is not None:
            for name, m in self.named_modules():
                if isinstance(m, nn.BatchNorm3d) and ".sar." not in f".{name}.":
                    m.eps = bn_eps

    def _make_layer(self, block: Block, conv_builder: type[nn.Module], planes: int, blocks: int, stride: int,
                    sr: dict[str, Any]) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            ds_stride = conv_builder.get_downsample_stride(stride)
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, planes * block.expansion, kernel_size=1, stride=ds_stride, bias=False),
                nn.BatchNorm3d(planes * block.expansion))
        kw = {"groups": self.groups, "base_width": self.base_width, **sr}
        layers = [block(self.inplanes, planes, conv_builder, stride, downsample, **kw)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, conv_builder, **kw) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _initialise_weights(self, zero_init_residual: bool) -> None:
        if self.fc.weight.is_meta:  # shapes only (torch.device("meta")): random init would be slow and moot
            return
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.constant_(m.last_bn.weight, 0)

    def set_recursion(self, enabled: bool) -> VideoResNet:
        """Switch every SR block on or off (off = the plain backbone with the same weights); returns self."""
        for m in self.modules():
            if isinstance(m, Squeeze_and_Recursion):
                m.active = enabled
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,3,T,H,W) -> (B,512·expansion)`` pooled features (the fc input)."""
        # Any T, H, W >= 1 works (layer4 shrinks to 1x1x1); only the layout is checked.
        if x.dim() != 5 or x.shape[1] != 3 or min(x.shape[2:]) < 1:
            raise ValueError(f"expected a clip of shape (B, 3, T, H, W) with T, H, W >= 1, got {tuple(x.shape)}")
        x = self.pool(self.stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,3,T,H,W) -> (B,num_classes)`` logits (no softmax)."""
        return self.fc(self.forward_features(x))


def _build(family: str, depth: int, groups: int = 1, width_per_group: int = 64, block: Block | None = None,
           **kwargs: Any) -> VideoResNet:
    stem, convs = FAMILIES[family]
    default_block, layers = DEPTHS[depth]
    return VideoResNet(block or default_block, list(convs), layers, stem, groups=groups,
                       width_per_group=width_per_group, **kwargs)


# R3D: full 3x3x3 convs. The "xt" (groups/width_per_group) variants only widen, see Bottleneck.
@register_model
def r3d_18(**kw: Any) -> VideoResNet:
    """R3D-18."""
    return _build("r3d", 18, **kw)


@register_model
def r3d_34(**kw: Any) -> VideoResNet:
    """R3D-34."""
    return _build("r3d", 34, **kw)


@register_model
def r3d_50(**kw: Any) -> VideoResNet:
    """R3D-50 (Bottleneck with expansion 1)."""
    return _build("r3d", 50, **kw)


@register_model
def r3d_101(**kw: Any) -> VideoResNet:
    """R3D-101."""
    return _build("r3d", 101, **kw)


@register_model
def r3d_152(**kw: Any) -> VideoResNet:
    """R3D-152."""
    return _build("r3d", 152, **kw)


@register_model
def r3d_200(**kw: Any) -> VideoResNet:
    """R3D-200."""
    return _build("r3d", 200, **kw)


@register_model
def r3dxt34_32d(**kw: Any) -> VideoResNet:
    """R3D-34 with groups=32, width 4 (ignored by BasicBlock: identical to r3d_34)."""
    return _build("r3d", 34, groups=32, width_per_group=4, **kw)


@register_model
def r3dxt50_32x4d(**kw: Any) -> VideoResNet:
    """R3D-50, 32x4d (not grouped: the same network as wide_r3d50_2)."""
    return _build("r3d", 50, groups=32, width_per_group=4, **kw)


@register_model
def r3dxt101_32x8d(**kw: Any) -> VideoResNet:
    """R3D-101, 32x8d (not grouped, 4x wider bottlenecks)."""
    return _build("r3d", 101, groups=32, width_per_group=8, **kw)


@register_model
def wide_r3d50_2(**kw: Any) -> VideoResNet:
    """Wide R3D-50 (2x bottleneck width)."""
    return _build("r3d", 50, width_per_group=128, **kw)


@register_model
def wide_r3d101_2(**kw: Any) -> VideoResNet:
    """Wide R3D-101 (2x bottleneck width)."""
    return _build("r3d", 101, width_per_group=128, **kw)


# R(2+1)D: 1x3x3 spatial + 3x1x1 temporal convs.
@register_model
def r2plus1d_18(**kw: Any) -> VideoResNet:
    """R(2+1)D-18."""
    return _build("r2plus1d", 18, **kw)


@register_model
def r2plus1d_34(**kw: Any) -> VideoResNet:
    """R(2+1)D-34."""
    return _build("r2plus1d", 34, **kw)


@register_model
def r2plus1d_50(**kw: Any) -> VideoResNet:
    """R(2+1)D-50."""
    return _build("r2plus1d", 50, **kw)


@register_model
def r2plus1d_101(**kw: Any) -> VideoResNet:
    """R(2+1)D-101."""
    return _build("r2plus1d", 101, **kw)


@register_model
def r2plus1d_152(**kw: Any) -> VideoResNet:
    """R(2+1)D-152."""
    return _build("r2plus1d", 152, **kw)


@register_model
def r2plus1d_200(**kw: Any) -> VideoResNet:
    """R(2+1)D-200."""
    return _build("r2plus1d", 200, **kw)


@register_model
def r2plus1dxt34_32d(**kw: Any) -> VideoResNet:
    """R(2+1)D-34 with groups=32, width 4 (ignored: identical to r2plus1d_34)."""
    return _build("r2plus1d", 34, groups=32, width_per_group=4, **kw)


@register_model
def r2plus1dxt50_32x4d(**kw: Any) -> VideoResNet:
    """R(2+1)D-50, 32x4d (not grouped)."""
    return _build("r2plus1d", 50, groups=32, width_per_group=4, **kw)


@register_model
def r2plus1dxt101_32x8d(**kw: Any) -> VideoResNet:
    """R(2+1)D-101, 32x8d (not grouped)."""
    return _build("r2plus1d", 101, groups=32, width_per_group=8, **kw)


@register_model
def wide_r2plus1d50_2(**kw: Any) -> VideoResNet:
    """Wide R(2+1)D-50."""
    return _build("r2plus1d", 50, width_per_group=128, **kw)


@register_model
def wide_r2plus1d101_2(**kw: Any) -> VideoResNet:
    """Wide R(2+1)D-101."""
    return _build("r2plus1d", 101, width_per_group=128, **kw)


# Channel-separated networks: ir = depthwise 3x3x3 only, ip = 1x1x1 + depthwise 3x3x3.
@register_model
def ir_csn_50(**kw: Any) -> VideoResNet:
    """ir-CSN-50."""
    return _build("ir_csn", 50, **kw)


@register_model
def ir_csn_101(**kw: Any) -> VideoResNet:
    """ir-CSN-101."""
    return _build("ir_csn", 101, **kw)


@register_model
def ir_csn_152(**kw: Any) -> VideoResNet:
    """ir-CSN-152."""
    return _build("ir_csn", 152, **kw)


@register_model
def ip_csn_50(**kw: Any) -> VideoResNet:
    """ip-CSN-50."""
    return _build("ip_csn", 50, **kw)


@register_model
def ip_csn_101(**kw: Any) -> VideoResNet:
    """ip-CSN-101."""
    return _build("ip_csn", 101, **kw)


@register_model
def ip_csn_152(**kw: Any) -> VideoResNet:
    """ip-CSN-152."""
    return _build("ip_csn", 152, **kw)


def _srtg(plain: Callable[..., VideoResNet]) -> Callable[..., VideoResNet]:
    """Register ``srtg_<plain>``: ``plain`` with an SR block after every residual block (``recursion=True``)."""
    def builder(gate_similarity: str = DEFAULT_SIMILARITY, gate_temperature: float = DEFAULT_TEMPERATURE,
                **kw: Any) -> VideoResNet:
        get_similarity(gate_similarity)  # fail before building a large network
        check_temperature(gate_temperature)
        model = plain(recursion=True, **kw)
        for m in model.modules():
            if isinstance(m, Squeeze_and_Recursion):
                m.set_gate(gate_similarity, gate_temperature)
        return model

    builder.__name__ = builder.__qualname__ = f"srtg_{plain.__name__}"
    builder.__doc__ = (f"SRTG {plain.__name__}: SR block after every residual block; accepts gates=, "
                       "gate_similarity=, gate_temperature=, place=, recurrent=, sr_init= (the original "
                       "hard-coded gates=False).")
    return register_model(builder)


srtg_r3d_18 = _srtg(r3d_18)
srtg_r3d_34 = _srtg(r3d_34)
srtg_r3d_50 = _srtg(r3d_50)
srtg_r3d_101 = _srtg(r3d_101)
srtg_r3d_152 = _srtg(r3d_152)
srtg_r3d_200 = _srtg(r3d_200)
srtg_r3dxt34_32d = _srtg(r3dxt34_32d)
srtg_r3dxt50_32x4d = _srtg(r3dxt50_32x4d)
srtg_r3dxt101_32x8d = _srtg(r3dxt101_32x8d)
srtg_wide_r3d50_2 = _srtg(wide_r3d50_2)
srtg_wide_r3d101_2 = _srtg(wide_r3d101_2)
srtg_r2plus1d_18 = _srtg(r2plus1d_18)
srtg_r2plus1d_34 = _srtg(r2plus1d_34)
srtg_r2plus1d_50 = _srtg(r2plus1d_50)
srtg_r2plus1d_101 = _srtg(r2plus1d_101)
srtg_r2plus1d_152 = _srtg(r2plus1d_152)
srtg_r2plus1d_200 = _srtg(r2plus1d_200)
srtg_r2plus1dxt34_32d = _srtg(r2plus1dxt34_32d)
srtg_r2plus1dxt50_32x4d = _srtg(r2plus1dxt50_32x4d)
srtg_r2plus1dxt101_32x8d = _srtg(r2plus1dxt101_32x8d)
srtg_wide_r2plus1d50_2 = _srtg(wide_r2plus1d50_2)
srtg_wide_r2plus1d101_2 = _srtg(wide_r2plus1d101_2)
srtg_ir_csn_50 = _srtg(ir_csn_50)
srtg_ir_csn_101 = _srtg(ir_csn_101)
srtg_ir_csn_152 = _srtg(ir_csn_152)
srtg_ip_csn_50 = _srtg(ip_csn_50)
srtg_ip_csn_101 = _srtg(ip_csn_101)
srtg_ip_csn_152 = _srtg(ip_csn_152)
