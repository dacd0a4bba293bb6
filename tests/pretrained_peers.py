"""Peer networks for the import tests, built independently of ``network``: torchvision's own code, or the
publisher's published layer list rebuilt here (IG65M's Caffe2 widths, 3D-ResNets-PyTorch, VMZ's CSN).

Each peer gets random weights *and* random BatchNorm statistics (at their defaults, eval-mode BN would be the
identity and hide a swapped mean/var), and is saved in its publisher's file format and key names.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models.video import mc3_18, r2plus1d_18, r3d_18
from torchvision.models.video.resnet import BasicBlock, Bottleneck, Conv2Plus1D, R2Plus1dStem, VideoResNet

CLIP = (1, 3, 4, 32, 32)


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=gen)
                if name.endswith("running_var"):
                    values = values.abs() + 0.5
                elif tensor.dim() == 1 and name.endswith("weight"):  # BN scale
                    values = values.abs() * 0.5 + 0.5
                elif tensor.dim() >= 2:
                    fan_in = tensor[0].numel()
                    values = values * (2.0 / fan_in) ** 0.5
                else:
                    values = values * 0.1
                tensor.copy_(values)
    return model.eval()


def caffe2_width(planes: int) -> int:
    """VMZ's (2+1)D width for a planes -> planes conv (their ``Conv2Plus1D`` recomputes it per conv)."""
    return (planes * planes * 27) // (planes * 9 + 3 * planes)


def ig65m_r2plus1d_34_peer(num_classes: int = 359) -> nn.Module:
    """IG65M's R(2+1)D-34: torchvision's VideoResNet with Caffe2 widths in each stage's first conv2, BN eps 1e-3."""
    model = VideoResNet(BasicBlock, [Conv2Plus1D] * 4, [3, 4, 6, 3], R2Plus1dStem, num_classes=num_classes)
    for stage, planes in ((model.layer2, 128), (model.layer3, 256), (model.layer4, 512)):
        stage[0].conv2[0] = Conv2Plus1D(planes, planes, caffe2_width(planes))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.eps = 1e-3
    return model


class KrBlock(nn.Module):
    """3D-ResNets-PyTorch BasicBlock: conv1 3x3x3 (stride), bn1, relu, conv2 3x3x3, bn2, + shortcut B, relu."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv3d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm3d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class KrResNet(nn.Module):
    """3D-ResNets-PyTorch ResNet (basic blocks): conv1 7x7x7 stride (1,2,2), bn1, relu, maxpool 3/2, 4 stages,
    adaptive average pool, fc."""

    def __init__(self, layers: tuple[int, ...], num_classes: int = 700) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, (7, 7, 7), (1, 2, 2), (3, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(3, 2, 1)
        inplanes, stages = 64, []
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = [KrBlock(inplanes, planes, 1 if i == 0 else 2)]
            blocks += [KrBlock(planes, planes) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DepthwiseConv(nn.Conv3d):
    """VMZ's ir-CSN conv builder: a bare depthwise 3x3x3 ``nn.Conv3d``."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(in_planes, out_planes, 3, stride, padding, groups=in_planes, bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class IPConv(nn.Sequential):
    """VMZ's ip-CSN conv builder: 1x1x1 conv, BN, bare depthwise 3x3x3 conv (no ReLU)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(nn.Conv3d(in_planes, out_planes, 1, bias=False), nn.BatchNorm3d(out_planes),
                         DepthwiseConv(out_planes, out_planes, None, stride, padding))

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class StemPool(nn.Sequential):
    """VMZ's CSN stem: 3x7x7 conv stride (1,2,2), BN, ReLU, max pool 1x3x3 stride (1,2,2)."""

    def __init__(self) -> None:
        super().__init__(nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(64),
                         nn.ReLU(inplace=True), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))


def vmz_csn_peer(kind: str, layers: tuple[int, ...], num_classes: int = 400) -> nn.Module:
    """VMZ's ir/ip-CSN: torchvision's VideoResNet and expansion-4 Bottleneck, BN eps 1e-3."""
    builder = DepthwiseConv if kind == "ir" else IPConv
    model = VideoResNet(Bottleneck, [builder] * 4, list(layers), StemPool, num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.eps = 1e-3
    return model


TORCHVISION = {"r3d_18": r3d_18, "mc3_18": mc3_18, "r2plus1d_18": r2plus1d_18}


def save_peer(source: str, arch: str, folder: Path, seed: int = 0, num_classes: int | None = None
              ) -> tuple[Path, nn.Module]:
    """Build ``source``'s ``arch`` peer with random weights and save it as its publisher does."""
    if source == "torchvision":
        peer = TORCHVISION[arch](num_classes=num_classes or 400)
    elif source == "ig65m":
        peer = ig65m_r2plus1d_34_peer(num_classes or 359)
    elif source == "3d-resnets":
        peer = KrResNet((2, 2, 2, 2) if arch == "r3d_18" else (3, 4, 6, 3), num_classes or 700)
    else:
        kind, _, depth = arch.split("_")
        layers = {"50": (3, 4, 6, 3), "101": (3, 4, 23, 3), "152": (3, 8, 36, 3)}[depth]
        peer = vmz_csn_peer(kind, layers, num_classes or 400)
    randomise(peer, seed)
    path = folder / f"{source}_{arch}.pth"
    state = peer.state_dict()
    if source == "3d-resnets":  # its training script's container
        torch.save({"epoch": 200, "arch": f"resnet-{arch.split('_')[1]}", "state_dict": state, "optimizer": {}}, path)
    else:
        torch.save(state, path)
    return path, peer
