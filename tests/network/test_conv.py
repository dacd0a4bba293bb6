"""TrimmedConv3d: same outputs and gradients as nn.Conv3d, with the padding-only taps cut."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

import network.conv as conv_module
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


def _grad_fn_name(out: torch.Tensor) -> str:
    return type(out.grad_fn).__name__


def test_small_3d_kernels_get_their_weight_gradient_from_a_forward_conv(monkeypatch):
    """Stride-1 3x3x3 convs on small maps take the forward-conv weight gradient (also when trimmed), and their
    gradients equal nn.Conv3d's; strided, (2+1)D, grouped, no-grad and large-map convs keep ATen's backward."""
    torch.manual_seed(0)
    cases = [((3, 8, 4, 4, 4), dict(kernel_size=3, padding=1), True),          # a 3x3x3 conv on a small map
             ((3, 8, 1, 2, 2), dict(kernel_size=3, padding=1), True),          # trimmed to 1x3x3
             ((3, 8, 4, 4, 4), dict(kernel_size=3, padding=1, stride=2), False),
             ((3, 8, 4, 4, 4), dict(kernel_size=(1, 3, 3), padding=(0, 1, 1)), False),
             ((3, 8, 4, 4, 4), dict(kernel_size=3, padding=1, groups=2), False),
             ((1, 8, 8, 29, 28), dict(kernel_size=3, padding=1), False)]       # more than WGRAD_MAX_POSITIONS
    for shape, kw, expected in cases:
        for bias, input_grad in ((True, True), (False, False)):
            ref = nn.Conv3d(8, 6, bias=bias, **kw)
            trim = TrimmedConv3d(8, 6, bias=bias, **kw)
            trim.load_state_dict(ref.state_dict())
            x = torch.randn(*shape, requires_grad=input_grad)
            a, b = ref(x), trim(x)
            assert (_grad_fn_name(b) == "_Conv3dForwardWGradBackward") is expected, (shape, kw)
            with monkeypatch.context() as patch:  # the forward is the same convolution call as without the path
                patch.setattr(conv_module, "WGRAD_MAX_POSITIONS", 0)
                assert torch.equal(trim(x), b)
            inputs = [x] if input_grad else []
            ga = torch.autograd.grad(a.square().sum(), inputs + list(ref.parameters()))
            gb = torch.autograd.grad(b.square().sum(), inputs + list(trim.parameters()))
            for u, v in zip(ga, gb):
                torch.testing.assert_close(v, u, rtol=1e-4, atol=1e-4)
    conv = TrimmedConv3d(8, 6, 3, padding=1)
    with torch.no_grad():
        assert conv(torch.randn(2, 8, 4, 4, 4)).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _grad_fn_name(conv(torch.randn(2, 8, 4, 4, 4))) != "_Conv3dForwardWGradBackward"
