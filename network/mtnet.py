"""MTNet: Multi-Temporal networks built from MTConv blocks, and the registered ``mtnet_*`` builders.

Paper: "Right on Time: Multi-Temporal Convolutions for Human Action Recognition in Videos",
Stergiou & Poppe, https://arxiv.org/abs/2011.03949. State_dict keys, shapes and parameter counts match the
original ``network/MTnet.py`` (``MTNet_xs`` ... ``MTNet_l_g8``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from network.blocks import BasicStem, init_weights
from network.contract import ClassifierMixin
from network.conv import FramewiseMaxPool3d
from network.mtconv import MTConv, RecurrentAlignment, Streams, resize3d, temporal_cossim_pool
from network.registry import register_model

# Smallest clip the network accepts (measured by running it; tests/network/test_mtnet.py checks both edges):
# the first frame selection needs 3 frames, and layer4's lateral (1, 2, 2) average pool needs a short stream
# at least 2 pixels wide, i.e. a stem output (after the odd-size padding) of at least 17 pixels per side,
# which every H, W >= 33 gives. The original failed with a shape error deep inside the network instead.
MIN_FRAMES = 3
MIN_SPATIAL = 33
_MIN_STEM_SIDE = 17


def _stem_side(h: int, w: int) -> int:
    """Smaller side of the stem output (stride 2, pad 3, kernel 7), after MTNet's odd-size padding."""
    h, w = (h + 1) // 2, (w + 1) // 2
    if h % 2 or w % 2:
        h, w = h + 1, w + 1
    return min(h, w)


class MTBlock(nn.Module):
    """Residual block of four MTConvs on ``(short, long)`` streams, each stream gated by a GRU block.

    conv1_1 (1×1×1, → width) → conv1_2 (1×1×1, → inplanes) → conv2 (3×3×3, stride, groups) → conv3
    (1×3×3, or 1×1×1 in a block with a downsample, → planes) → ``x·r`` recurrent gates → + identity → ReLU.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: MTConv | None = None,
                 groups: int = 1, base_width: int = 64, rate: float = 0.875) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0) / groups)
        self.conv1_1 = MTConv(inplanes, width, kernel_size=1, rate=rate)
        self.conv1_2 = MTConv(width, inplanes, kernel_size=1, rate=rate)
        self.conv2 = MTConv(inplanes, width, kernel_size=3, rate=rate, stride=stride, padding=1, groups=groups)
        if downsample is not None:
            self.conv3 = MTConv(width, planes, kernel_size=1, rate=rate, groups=groups)
        else:
            self.conv3 = MTConv(width, planes, kernel_size=(1, 3, 3), rate=rate, padding=(0, 1, 1),
                                groups=groups)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.sr_short = RecurrentAlignment(int(planes * rate))
        self.sr_long = RecurrentAlignment(int(planes * (1 - rate)))

    def _relu(self, x: Streams) -> Streams:
        # In place is safe here: every input is a fresh norm output that nothing else holds.
        return self.relu(x[0]), self.relu(x[1])

    def forward(self, x: Streams) -> Streams:
        out = self._relu(self.conv1_1(x))
        out = self._relu(self.conv1_2(out))
        out = self._relu(self.conv2(out))
        short, long = self.conv3(out)
        id_short, id_long = x
        if self.downsample is not None:
            t, h, w = id_long.shape[2:]
            if h < 3 or w < 3:
                # Original tested H twice and never W, then resized to (T, 3, 3); we test both and only grow
                # the small side(s): identical for the square inputs the original supported.
                id_long = resize3d(id_long, (t, max(h, 3), max(w, 3)))
            id_short, id_long = self.downsample((id_short, id_long))
        id_short = resize3d(id_short, short.shape[2:])
        id_long = resize3d(id_long, long.shape[2:])
        # Original added the identity in place into the GRU-gated output; out of place here.
        short = self.relu(self.sr_short(short) + id_short)
        long = self.relu(self.sr_long(long) + id_long)
        return short, long


class MTNet(ClassifierMixin, nn.Module):
    """Multi-Temporal network. ``x`` (B, 3, T, H, W) → logits (B, num_classes); T >= 3, H, W >= 33.

    Stem → max-pool → frame selection (T → T/2) → channel split into short (7/8 of 64) and long (1/8,
    average-pooled (1, 2, 2) and frame-selected again) → four stages of MTBlocks → global average pool of each
    stream → concatenation → ``fc``. ``groups > 1`` gives the sub-stream (``_g8``) variants.
    """

    def __init__(self, block: type[MTBlock], layers: list[int], num_classes: int = 400, groups: int = 1,
                 width_per_group: int = 64, zero_init_residual: bool = False, r: float = 0.875) -> None:
        super().__init__()
        self.groups, self.base_width, self.rate = groups, width_per_group, r
        self.inplanes = 64
        self.init_planes_short = int(self.inplanes * r)
        self.init_planes_long = self.inplanes - self.init_planes_short
        # Registered before the stem, as in the original (module order only; neither has state).
        self.pool = FramewiseMaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.stem = BasicStem()
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._initialise_weights(zero_init_residual)

    def _make_layer(self, block: type[MTBlock], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = MTConv(self.inplanes, planes * block.expansion, kernel_size=1, rate=self.rate,
                                stride=(stride, stride, stride), no_lateral=True)
        kw = dict(groups=self.groups, base_width=self.base_width, rate=self.rate)
        layers = [block(self.inplanes, planes, stride, downsample, **kw)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **kw) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _initialise_weights(self, zero_init_residual: bool) -> None:
        init_weights(self)
        if zero_init_residual:
            # Original looked for a ``bn3`` that MTBlock does not have and crashed; the last norms of a block
            # are conv3's, so those start at zero and each block starts as its identity path.
            for m in self.modules():
                if isinstance(m, MTBlock):
                    nn.init.zeros_(m.conv3.norm_short.weight)
                    nn.init.zeros_(m.conv3.norm_long.weight)

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        """Raise a one-line ValueError unless ``x`` is (B, 3, T, H, W) with T >= 3 and H, W >= 33 (exact test:
        a few smaller sizes that the odd-size padding rescues, such as 32x33, are accepted too)."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"MTNet expected a clip of shape (B, 3, T, H, W), got {tuple(x.shape)}")
        t, h, w = x.shape[2:]
        if t < MIN_FRAMES or _stem_side(h, w) < _MIN_STEM_SIDE:
            raise ValueError(f"MTNet needs clips of at least {MIN_FRAMES} frames and {MIN_SPATIAL}x{MIN_SPATIAL} "
                             f"pixels, got (T, H, W) = ({t}, {h}, {w}); sample more frames or use a larger crop")

    def forward_features(self, x: torch.Tensor, stages: dict[str, Any] | None = None) -> torch.Tensor:
        """(B, 3, T, H, W) → pooled features (B, 512) that feed ``fc``; fills ``stages`` (stem, pool, layer1-4,
        the layers as [short, long] pairs) when a dict is given."""
        self.check_input(x)
        return self._features(x, stages)

    def _features(self, x: torch.Tensor, stages: dict[str, Any] | None = None) -> torch.Tensor:
        record = stages if stages is not None else {}
        x = record["stem"] = self.stem(x)
        if x.shape[3] % 2 or x.shape[4] % 2:
            # As the original: one replicated row on top AND one column on the left whenever H or W is odd.
            x = F.pad(x, (1, 0, 1, 0, 0, 0), mode="replicate")
        x = record["pool"] = self.pool(x)
        x = temporal_cossim_pool(x)
        short, long = x[:, :self.init_planes_short], x[:, self.init_planes_short:]
        long = F.avg_pool3d(long, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        if long.shape[2] > 2:
            long = temporal_cossim_pool(long)
        streams: Streams = (short, long)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            streams = getattr(self, name)(streams)
            record[name] = list(streams)
        pooled = [self.avgpool(s).flatten(1) for s in streams]
        return torch.cat(pooled, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def _mtnet(layers: list[int], groups: int = 1, **kwargs: Any) -> MTNet:
    return MTNet(MTBlock, layers, groups=groups, **kwargs)


@register_model
def mtnet_xs(**kwargs: Any) -> MTNet:
    """MTNet_xs: MTBlocks 2,2,2,2 (the original factory built MTNet_s for this name; we build MTNet_xs)."""
    return _mtnet([2, 2, 2, 2], **kwargs)


@register_model
def mtnet_s(**kwargs: Any) -> MTNet:
    """MTNet_s: MTBlocks 2,2,5,3."""
    return _mtnet([2, 2, 5, 3], **kwargs)


@register_model
def mtnet_m(**kwargs: Any) -> MTNet:
    """MTNet_m: MTBlocks 3,4,6,3 (also reachable as ``mtnet``)."""
    return _mtnet([3, 4, 6, 3], **kwargs)


@register_model
def mtnet_l(**kwargs: Any) -> MTNet:
    """MTNet_l: MTBlocks 3,4,23,3."""
    return _mtnet([3, 4, 23, 3], **kwargs)


@register_model
def mtnet_xl(**kwargs: Any) -> MTNet:
    """MTNet_xl: MTBlocks 3,8,36,3 (the original factory built MTNet_l for this name; we build MTNet_xl)."""
    return _mtnet([3, 8, 36, 3], **kwargs)


@register_model
def mtnet_xxl(**kwargs: Any) -> MTNet:
    """MTNet_xxl: MTBlocks 3,24,36,3."""
    return _mtnet([3, 24, 36, 3], **kwargs)


@register_model
def mtnet_xs_g8(**kwargs: Any) -> MTNet:
    """MTNet_xs with 8 groups (7 short sub-streams + GroupNorm in conv2/conv3)."""
    return _mtnet([2, 2, 2, 2], groups=8, **kwargs)


@register_model
def mtnet_s_g8(**kwargs: Any) -> MTNet:
    """MTNet_s with 8 groups."""
    return _mtnet([2, 2, 5, 3], groups=8, **kwargs)


@register_model
def mtnet_m_g8(**kwargs: Any) -> MTNet:
    """MTNet_m with 8 groups."""
    return _mtnet([3, 4, 6, 3], groups=8, **kwargs)


@register_model
def mtnet_l_g8(**kwargs: Any) -> MTNet:
    """MTNet_l with 8 groups."""
    return _mtnet([3, 4, 23, 3], groups=8, **kwargs)
