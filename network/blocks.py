"""Building blocks of the video ResNets: conv builders, stems and residual blocks.

Module names and registration order follow the original ``network/srtg_resnet.py`` exactly, so state_dict keys
and shapes match released checkpoints (e.g. ``layer2.0.conv1.0.0.weight``: block ``conv1`` is a Sequential whose
``[0]`` is the conv builder, itself a Sequential). Every conv builder takes
``(in_planes, out_planes, midplanes, stride=1, padding=1)`` and tells the ResNet, through the static
``get_downsample_stride(stride)``, which stride the residual 1x1x1 projection needs.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from network.conv import TrimmedConv3d
from network.srtg import Squeeze_and_Recursion

ConvBuilder = Callable[..., nn.Module]


def midplanes_for(inplanes: int, planes: int) -> int:
    """Intermediate (2+1)D width that keeps the parameter count of a 3x3x3 conv (the original's formula)."""
    return (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)



MIDPLANES_RULES = ("original", "caffe2")


def init_weights(root: nn.Module) -> None:
    """The original's initialisation for every module under ``root``: Conv3d kaiming-normal (fan_out, relu),
    BatchNorm/GroupNorm weight 1 and bias 0, Linear N(0, 0.01) and bias 0 (recurrent cells keep their own)."""
    for m in root.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm3d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)

class Conv3DSimple(nn.Sequential):
    """Full 3x3x3 convolution (R3D); ``midplanes`` is unused."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(TrimmedConv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=padding,
                                       bias=False))

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class Conv2Plus1D(nn.Sequential):
    """(2+1)D factorisation: 1x3x3 spatial conv to ``midplanes``, BN, ReLU, 3x1x1 temporal conv."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1, padding: int = 1) -> None:
        super().__init__(
            TrimmedConv3d(in_planes, midplanes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                          padding=(0, padding, padding), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            TrimmedConv3d(midplanes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1),
                          padding=(padding, 0, 0), bias=False))

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class Conv3DNoTemporal(TrimmedConv3d):
    """1x3x3 spatial-only conv (a bare Conv3d: no ``.0`` level, as the original's surviving definition).

    The original defined this class twice (the first, shadowed one passed a module as ``in_channels``);
    there is one definition here. Used by torchvision's MC3 (``tv_mc3_18``, layers 2-4); no original network uses
    it.
    """

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(in_planes, out_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                         padding=(0, padding, padding), bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return 1, stride, stride


class Conv3DDepthwise(nn.Sequential):
    """Channel-separated 3x3x3 conv (``groups = in_planes``), the ir-CSN bottleneck conv."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(TrimmedConv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=padding,
                                       groups=in_planes, bias=False))

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class IPConv3DDepthwise(nn.Sequential):
    """Interaction-preserved CSN conv: 1x1x1 conv, BN, ReLU, then a depthwise 3x3x3 conv (key ``.3.0``)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        if in_planes != out_planes:
            raise ValueError(f"IPConv3DDepthwise needs in_planes == out_planes, got {in_planes} and {out_planes}")
        super().__init__(
            nn.Conv3d(in_planes, out_planes, kernel_size=1, bias=False),
            nn.BatchNorm3d(out_planes),
            nn.ReLU(inplace=True),
            Conv3DDepthwise(out_planes, out_planes, None, stride=stride, padding=padding))

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class VMZIPConv3DDepthwise(nn.Sequential):
    """ip-CSN conv as VMZ's PyTorch release defines it: 1x1x1 conv, BN, depthwise 3x3x3 (key ``.2.0``), with no
    ReLU between (unlike :class:`IPConv3DDepthwise`, the original's, which has one)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        if in_planes != out_planes:
            raise ValueError(f"VMZIPConv3DDepthwise needs in_planes == out_planes, got {in_planes} and {out_planes}")
        super().__init__(
            nn.Conv3d(in_planes, out_planes, kernel_size=1, bias=False),
            nn.BatchNorm3d(out_planes),
            Conv3DDepthwise(out_planes, out_planes, None, stride=stride, padding=padding))

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class BasicStem(nn.Sequential):
    """R3D/CSN/MTNet stem: 3x7x7 conv (stride 1,2,2) to 64 channels, BN, ReLU. ``(B,3,T,H,W) -> (B,64,T,H/2,W/2)``.

    ``temporal_kernel`` (odd) sets the conv's frames, padded to keep T: 3 as the original and torchvision, 7 as
    kenshohara's 3D-ResNets-PyTorch.
    """

    def __init__(self, temporal_kernel: int = 3) -> None:
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f"stem temporal kernel must be odd and >= 1, got {temporal_kernel}")
        super().__init__(
            nn.Conv3d(3, 64, kernel_size=(temporal_kernel, 7, 7), stride=(1, 2, 2),
                      padding=(temporal_kernel // 2, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True))


class R2Plus1dStem(nn.Sequential):
    """(2+1)D stem: 1x7x7 conv to 45 channels, BN, ReLU, 3x1x1 conv to 64, BN, ReLU."""

    def __init__(self, temporal_kernel: int = 3) -> None:
        if temporal_kernel != 3:
            raise ValueError(f"the (2+1)D stem has a 3-frame temporal conv; temporal kernel {temporal_kernel} "
                             "applies to the R3D/CSN stem only")
        super().__init__(
            nn.Conv3d(3, 45, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True))


class _SRPlacement(nn.Module):
    """Shared SR plumbing of the residual blocks: validates ``place`` and applies ``sar`` there."""

    PLACES: dict[str, str] = {}
    sar: Squeeze_and_Recursion | None
    place: str

    def _check_place(self, place: str) -> None:
        if place not in self.PLACES:
            options = ", ".join(f"'{p}' ({where})" for p, where in self.PLACES.items())
            raise ValueError(f"{type(self).__name__}: SR place '{place}' is not supported; use one of {options}")

    def _sr(self, x: torch.Tensor, here: str) -> torch.Tensor:
        return self.sar(x) if self.sar is not None and here == self.place else x


class BasicBlock(_SRPlacement):
    """Two-conv residual block ``(B,inplanes,T,H,W) -> (B,planes,T/s,H/s,W/s)``, optionally with an SR block.

    ``groups`` and ``base_width`` are accepted and ignored, as in the original (so ``r3dxt34_32d`` is
    ``r3d_34``). ``midplanes_rule``: ``'original'`` (the original's and torchvision's: conv2 reuses conv1's
    (2+1)D width) or ``'caffe2'`` (VMZ/IG65M: conv2's width from its own ``planes -> planes``).
    With ``recursion=True`` a Squeeze_and_Recursion module ``sar`` of width ``planes`` is applied at ``place``
    (``sr_init``: its ``init``). The original sized the 'top' SR block with ``inplanes`` although it sees
    ``planes`` channels; it is sized correctly here.
    """

    expansion = 1
    PLACES = {"top": "after conv1", "mid": "after conv2", "skip": "on the identity branch",
              "final": "after the residual add and ReLU"}

    def __init__(self, inplanes: int, planes: int, conv_builder: ConvBuilder, stride: int = 1,
                 downsample: nn.Module | None = None, groups: int = 1, base_width: int = 64, place: str = "final",
                 recursion: bool = False, gates: bool = False, recurrent: str = "lstm",
                 sr_init: str = "identity", midplanes_rule: str = "original") -> None:
        super().__init__()
        self._check_place(place)
        if midplanes_rule not in MIDPLANES_RULES:
            raise ValueError(f"midplanes_rule must be one of {', '.join(MIDPLANES_RULES)}, got '{midplanes_rule}'")
        midplanes = midplanes_for(inplanes, planes)
        # conv2 reuses conv1's midplanes although it maps planes -> planes (checkpoint shapes depend on it).
        mid2 = midplanes_for(planes, planes) if midplanes_rule == "caffe2" else midplanes
        self.conv1 = nn.Sequential(conv_builder(inplanes, planes, midplanes, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(planes, planes, mid2), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.place = place
        self.sar = Squeeze_and_Recursion(planes, gates=gates, recurrent=recurrent, init=sr_init) if recursion else None

    @property
    def last_bn(self) -> nn.BatchNorm3d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.conv2[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._sr(self.conv1(x), "top")
        out = self._sr(self.conv2(out), "mid")
        identity = x if self.downsample is None else self.downsample(x)
        identity = self._sr(identity, "skip")
        out = self.relu(out + identity)
        return self._sr(out, "final")


class Bottleneck(_SRPlacement):
    """1x1x1 -> builder -> 1x1x1 residual block ``(B,inplanes,T,H,W) -> (B,planes,...)``, optionally with SR.

    Faithful to the original for checkpoint compatibility: ``expansion = 1`` (not 4), so the block outputs
    ``planes`` channels and ``fc`` always sees 512 features; ``groups`` only widens the block
    (``width = int(planes*base_width/64)*groups``) and is never passed to the conv builder, so the "ResNeXt"
    variants are not grouped (``r3dxt50_32x4d`` is the same network as ``wide_r3d50_2``).
    SR places are sized to the channels they see; the original's 'bottom' (a no-op) and 'res' are rejected.
    """

    expansion = 1
    PLACES = {"start": "on the block input", "top": "after conv1", "mid": "after conv2",
              "end": "after conv3, before the add", "skip": "on the identity branch",
              "final": "after the residual add and ReLU"}

    def __init__(self, inplanes: int, planes: int, conv_builder: ConvBuilder, stride: int = 1,
                 downsample: nn.Module | None = None, groups: int = 1, base_width: int = 64, place: str = "final",
                 recursion: bool = False, gates: bool = False, recurrent: str = "lstm",
                 sr_init: str = "identity", midplanes_rule: str = "original") -> None:
        super().__init__()
        self._check_place(place)
        if midplanes_rule != "original":
            raise ValueError(f"midplanes_rule '{midplanes_rule}' applies to BasicBlock (R(2+1)D-18/34) only")
        midplanes = midplanes_for(inplanes, planes)
        out_planes = planes * self.expansion
        width = int(planes * (base_width / 64.0)) * groups
        mid_width = int(midplanes * (base_width / 64.0)) * groups
        self.conv1 = nn.Sequential(nn.Conv3d(inplanes, width, kernel_size=1, bias=False), nn.BatchNorm3d(width),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(width, width, mid_width, stride), nn.BatchNorm3d(width),
                                   nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(nn.Conv3d(width, out_planes, kernel_size=1, bias=False),
                                   nn.BatchNorm3d(out_planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.place = place
        sr_planes = {"start": inplanes, "top": width, "mid": width}.get(place, out_planes)
        self.sar = (Squeeze_and_Recursion(sr_planes, gates=gates, recurrent=recurrent, init=sr_init)
                    if recursion else None)

    @property
    def last_bn(self) -> nn.BatchNorm3d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.conv3[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._sr(x, "start")
        out = self._sr(self.conv1(x), "top")
        out = self._sr(self.conv2(out), "mid")
        out = self._sr(self.conv3(out), "end")
        identity = x if self.downsample is None else self.downsample(x)
        identity = self._sr(identity, "skip")
        out = self.relu(out + identity)
        return self._sr(out, "final")


class Bottleneck4(Bottleneck):
    """:class:`Bottleneck` with ``expansion = 4`` (torchvision's, VMZ's and the CSN paper's): the block outputs
    ``4 * planes`` channels, so ``fc`` sees 2048 features. Used by the ``vmz_*_csn_*`` networks only."""

    expansion = 4
