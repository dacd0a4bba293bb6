"""TrimmedConv3d: same outputs and gradients as nn.Conv3d, with the padding-only taps cut."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

from network.conv import TrimmedConv3d, _trim_dim, untrimmed
from network.registry import create_model


@pytest.mark.parametrize("size,kernel,stride,padding,expected", [
    (1, 3, 1, 1, (1, 2, 0)),   # 1 voxel, 3x3x3: only the centre tap sees data
    (2, 3, 2, 1, (1, 3, 0)),   # layer4's strided conv on a 2x2 map
    (2, 7, 2, 3, (3, 5, 0)),   # a 7-wide stem kernel on a 2-pixel map
    (4, 3, 1, 1, (0, 3, 1)),   # big enough: nothing to cut
    (5, 1, 1, 0, (0, 1, 0)),
])
def test_trim_dim(size, kernel, stride, padding, expected):
    assert _trim_dim(size, kernel, stride, padding) == expected


def test_outputs_and_gradients_match_conv3d():
    torch.manual_seed(0)
    for n, k, s, p, groups in itertools.product([1, 2, 3, 5], [1, 3, 5], [1, 2], [0, 1, 2], [1, 2]):
        shape = (n, n + 1, max(n - 1, 1))
        if min(shape) + 2 * p < k:
            continue
        ref = nn.Conv3d(4, 6, k, s, p, groups=groups, bias=True)
        trim = TrimmedConv3d(4, 6, k, s, p, groups=groups, bias=True)
        trim.load_state_dict(ref.state_dict())
        x = torch.randn(2, 4, *shape, requires_grad=True)
        a, b = ref(x), trim(x)
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        ga = torch.autograd.grad(a.square().sum(), [x, ref.weight, ref.bias])
        gb = torch.autograd.grad(b.square().sum(), [x, trim.weight, trim.bias])
        for u, v in zip(ga, gb):
            torch.testing.assert_close(v, u, rtol=1e-4, atol=1e-4)


def test_cut_taps_get_zero_gradient_and_keys_are_unchanged():
    conv = TrimmedConv3d(3, 5, 3, 1, 1, bias=False)
    conv(torch.randn(2, 3, 1, 1, 1)).sum().backward()
    grad = conv.weight.grad
    assert grad[:, :, 1, 1, 1].abs().sum() > 0
    grad[:, :, 1, 1, 1] = 0
    assert grad.abs().sum() == 0
    assert list(conv.state_dict()) == ["weight"]


def test_small_clip_through_srtg_r3d_18_matches_plain_convs():
    """At 8x32² layer4 runs on 1x1x1 maps; swapping every TrimmedConv3d for nn.Conv3d gives the same logits."""
    torch.manual_seed(0)
    model = create_model("srtg_r3d_18", num_classes=5).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        trimmed = model(x)
        plain = untrimmed(model)(x)
    assert not any(isinstance(m, TrimmedConv3d) for m in model.modules())
    torch.testing.assert_close(trimmed, plain, rtol=1e-4, atol=1e-5)
