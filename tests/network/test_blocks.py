"""Conv builders, stems and residual blocks: the original's structure, SR placement, zero_init_residual."""
from __future__ import annotations

import pytest
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
    midplanes_for,
)
from network.srtg_resnet import r3d_18


@pytest.mark.parametrize("inplanes, planes, mid", [(64, 64, 144), (64, 128, 230), (128, 128, 288), (128, 256, 460),
                                                   (256, 256, 576), (256, 512, 921), (512, 512, 1152)])
def test_midplanes_formula(inplanes: int, planes: int, mid: int) -> None:
    assert midplanes_for(inplanes, planes) == mid


@pytest.mark.parametrize("builder, stride", [(Conv3DSimple, (2, 2, 2)), (Conv2Plus1D, (2, 2, 2)),
                                             (Conv3DNoTemporal, (1, 2, 2)), (Conv3DDepthwise, (2, 2, 2)),
                                             (IPConv3DDepthwise, (2, 2, 2))])
def test_builders_agree_with_their_downsample_stride(builder: type[nn.Module], stride: tuple[int, ...]) -> None:
    assert builder.get_downsample_stride(2) == stride
    conv = builder(8, 8, 12, stride=2)
    out = conv(torch.randn(1, 8, 4, 6, 6))
    assert out.shape == (1, 8, 4 // stride[0], 6 // stride[1], 6 // stride[2])


def test_builder_key_layout() -> None:
    assert [k for k in Conv2Plus1D(4, 8, 6).state_dict() if k.endswith("weight")] == ["0.weight", "1.weight",
                                                                                       "3.weight"]
    assert list(Conv3DNoTemporal(4, 8).state_dict()) == ["weight"]  # a bare Conv3d, one definition
    assert IPConv3DDepthwise(8, 8).state_dict()["3.0.weight"].shape == (8, 1, 3, 3, 3)
    with pytest.raises(ValueError, match="in_planes == out_planes"):
        IPConv3DDepthwise(8, 16)


def test_stems() -> None:
    x = torch.randn(1, 3, 4, 16, 16)
    assert BasicStem()(x).shape == R2Plus1dStem()(x).shape == (1, 64, 4, 8, 8)
    assert [k for k in R2Plus1dStem().state_dict() if k.endswith("weight")] == ["0.weight", "1.weight", "3.weight",
                                                                               "4.weight"]


def _downsample(inplanes: int, planes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(inplanes, planes, 1, stride=2, bias=False), nn.BatchNorm3d(planes))


@pytest.mark.parametrize("place", ["top", "mid", "skip", "final"])
def test_basic_block_sr_places(place: str) -> None:
    block = BasicBlock(16, 32, Conv3DSimple, stride=2, downsample=_downsample(16, 32), place=place,
                       recursion=True, gates=True)
    assert block.sar.lstm.input_size == 32  # the original sized 'top' with inplanes (16): wrong
    out = block(torch.randn(2, 16, 4, 8, 8))
    assert out.shape == (2, 32, 2, 4, 4)
    out.mean().backward()
    assert block.sar.lstm.weight_ih_l0.grad is not None


@pytest.mark.parametrize("place, width", [("start", 16), ("top", 64), ("mid", 64), ("end", 32), ("skip", 32),
                                          ("final", 32)])
def test_bottleneck_sr_places_are_sized_to_what_they_see(place: str, width: int) -> None:
    block = Bottleneck(16, 32, Conv3DSimple, stride=2, downsample=_downsample(16, 32), base_width=128,
                       place=place, recursion=True)
    assert block.sar.lstm.input_size == width
    assert block(torch.randn(2, 16, 4, 8, 8)).shape == (2, 32, 2, 4, 4)


@pytest.mark.parametrize("block, place", [(Bottleneck, "bottom"), (Bottleneck, "res"), (BasicBlock, "start"),
                                          (BasicBlock, "end")])
def test_unsupported_places_are_rejected(block: type[nn.Module], place: str) -> None:
    with pytest.raises(ValueError, match=f"SR place '{place}' is not supported; use one of"):
        block(16, 16, Conv3DSimple, place=place, recursion=True)


def test_bottleneck_ignores_groups_in_the_conv() -> None:
    """Faithful quirk: groups only widen the block (checkpoint compatibility)."""
    block = Bottleneck(64, 64, Conv3DSimple, groups=32, base_width=4)
    assert block.conv2[0][0].groups == 1 and block.conv2[0][0].in_channels == 128
    assert block.conv3[0].out_channels == 64  # expansion 1


def test_zero_init_residual_zeroes_the_last_bn_of_every_block() -> None:
    model = r3d_18(zero_init_residual=True).eval()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8 and all(not b.last_bn.weight.detach().any() for b in blocks)
    x = torch.randn(1, 64, 2, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model.layer1[0](x), torch.relu(x))  # residual branch silent
    bottleneck = Bottleneck(8, 8, Conv3DSimple)
    assert bottleneck.last_bn is bottleneck.conv3[1]
