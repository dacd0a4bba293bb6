"""Video ResNets shaped exactly as published weights expect, each registered with its ``srtg_`` twin.

Same blocks and key layout as the original networks (``network.srtg_resnet``), with the publisher's stem pool,
stem kernel, (2+1)D widths, BatchNorm eps and input convention (``model.input_spec``):

==========================  ==========================================================================
``tv_r3d_18``               torchvision ``r3d_18``: no stem pool, RGB, torchvision mean/std
``tv_mc3_18``               torchvision ``mc3_18``: 3x3x3 convs in layer1, 1x3x3 after; no stem pool
``tv_r2plus1d_18``          torchvision ``r2plus1d_18``: no stem pool
``ig65m_r2plus1d_34``       IG65M ``r2plus1d_34`` (moabitcoin/ig65m-pytorch, Caffe2 weights): no stem pool,
                            Caffe2 (2+1)D widths, BatchNorm eps 1e-3, torchvision mean/std
``kr_r3d_18``, ``kr_r3d_34``  kenshohara/3D-ResNets-PyTorch ``resnet-18/34``: 7-frame stem conv, the
                            original's 3x3x3 stem pool, RGB with its Kinetics mean/std
``vmz_ir_csn_{50,101,152}``  VMZ ir-CSN: expansion-4 bottlenecks, depthwise 3x3x3, spatial stem pool
``vmz_ip_csn_{50,101,152}``  VMZ ip-CSN: 1x1x1 conv + BN + depthwise 3x3x3 (no ReLU between)
==========================  ==========================================================================

The original's ``ir_csn_*``/``ip_csn_*`` (expansion 1, 512 features) are other networks and keep their names.
"""
from __future__ import annotations

from typing import Any

from network.blocks import Bottleneck4
from network.config import RESNETS3D_INPUT, TORCHVISION_INPUT
from network.registry import register_model
from network.srtg_resnet import VideoResNet, _build, _srtg

TORCHVISION = {"stem_pool": "none", "input_spec": TORCHVISION_INPUT}
CAFFE2 = {"bn_eps": 1e-3, "input_spec": TORCHVISION_INPUT}  # VMZ and IG65M: Caffe2 BN, torchvision's input
VMZ_CSN = {**CAFFE2, "stem_pool": "spatial", "block": Bottleneck4}


@register_model
def tv_r3d_18(**kw: Any) -> VideoResNet:
    """torchvision's R3D-18 (Kinetics-400 weights ``R3D_18_Weights``)."""
    return _build("r3d", 18, **TORCHVISION, **kw)


@register_model
def tv_mc3_18(**kw: Any) -> VideoResNet:
    """torchvision's MC3-18 (mixed convolutions: 3x3x3 in layer1, 1x3x3 in layers 2-4)."""
    return _build("mc3", 18, **TORCHVISION, **kw)


@register_model
def tv_r2plus1d_18(**kw: Any) -> VideoResNet:
    """torchvision's R(2+1)D-18."""
    return _build("r2plus1d", 18, **TORCHVISION, **kw)


@register_model
def ig65m_r2plus1d_34(**kw: Any) -> VideoResNet:
    """IG65M R(2+1)D-34 (Caffe2 weights as converted by moabitcoin/ig65m-pytorch)."""
    return _build("r2plus1d", 34, stem_pool="none", midplanes_rule="caffe2", **CAFFE2, **kw)


@register_model
def kr_r3d_18(**kw: Any) -> VideoResNet:
    """3D-ResNets-PyTorch ResNet-18 (7x7x7 stem conv, 3x3x3 stem pool)."""
    return _build("r3d", 18, stem_temporal_kernel=7, input_spec=RESNETS3D_INPUT, **kw)


@register_model
def kr_r3d_34(**kw: Any) -> VideoResNet:
    """3D-ResNets-PyTorch ResNet-34."""
    return _build("r3d", 34, stem_temporal_kernel=7, input_spec=RESNETS3D_INPUT, **kw)


@register_model
def vmz_ir_csn_50(**kw: Any) -> VideoResNet:
    """VMZ ir-CSN-50 (expansion-4 bottlenecks, 2048 features)."""
    return _build("ir_csn", 50, **VMZ_CSN, **kw)


@register_model
def vmz_ir_csn_101(**kw: Any) -> VideoResNet:
    """VMZ ir-CSN-101."""
    return _build("ir_csn", 101, **VMZ_CSN, **kw)


@register_model
def vmz_ir_csn_152(**kw: Any) -> VideoResNet:
    """VMZ ir-CSN-152 (IG65M / Sports1M weights, Kinetics fine-tuned)."""
    return _build("ir_csn", 152, **VMZ_CSN, **kw)


@register_model
def vmz_ip_csn_50(**kw: Any) -> VideoResNet:
    """VMZ ip-CSN-50."""
    return _build("vmz_ip_csn", 50, **VMZ_CSN, **kw)


@register_model
def vmz_ip_csn_101(**kw: Any) -> VideoResNet:
    """VMZ ip-CSN-101."""
    return _build("vmz_ip_csn", 101, **VMZ_CSN, **kw)


@register_model
def vmz_ip_csn_152(**kw: Any) -> VideoResNet:
    """VMZ ip-CSN-152."""
    return _build("vmz_ip_csn", 152, **VMZ_CSN, **kw)


srtg_tv_r3d_18 = _srtg(tv_r3d_18)
srtg_tv_mc3_18 = _srtg(tv_mc3_18)
srtg_tv_r2plus1d_18 = _srtg(tv_r2plus1d_18)
srtg_ig65m_r2plus1d_34 = _srtg(ig65m_r2plus1d_34)
srtg_kr_r3d_18 = _srtg(kr_r3d_18)
srtg_kr_r3d_34 = _srtg(kr_r3d_34)
srtg_vmz_ir_csn_50 = _srtg(vmz_ir_csn_50)
srtg_vmz_ir_csn_101 = _srtg(vmz_ir_csn_101)
srtg_vmz_ir_csn_152 = _srtg(vmz_ir_csn_152)
srtg_vmz_ip_csn_50 = _srtg(vmz_ip_csn_50)
srtg_vmz_ip_csn_101 = _srtg(vmz_ip_csn_101)
srtg_vmz_ip_csn_152 = _srtg(vmz_ip_csn_152)
