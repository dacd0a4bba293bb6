"""Faster drop-ins for ``nn.Conv3d`` (skips kernel taps that only ever meet zero padding) and ``nn.MaxPool3d``.

When a feature map is smaller than the kernel (e.g. layer4 of a ResNet at 1x1 on 32-pixel clips), a padded 3x3x3
convolution multiplies most of its taps with padding zeros. The result is unchanged if those taps are cut from
the weight and the padding reduced to match, but the work is not: on CPU, the backward pass of the full 3x3x3
weight at 1x1x1 took 89 ms against 6 ms forward for 512 channels and a batch of 32 (oneDNN, 2 threads).
`TrimmedConv3d` keeps the parameter (state_dict keys and shapes unchanged) and convolves with the slice of it
that can touch data; the cut taps get zero gradient, exactly as with the full kernel.

On CPU, a 3x3x3 convolution at stride 1 on a small map also gets its weight gradient as a forward convolution
(`conv3d_wgrad_as_forward`): oneDNN's backward-weights kernel took 2-4x the time of its forward there.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@lru_cache(maxsize=1024)
def _trim_dim(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int, int]:
    """``(first tap, last tap + 1, new padding)`` of one dimension: the taps that meet data at some output."""
    out = (size + 2 * padding - kernel) // stride + 1
    used = [j for j in range(kernel) if any(0 <= o * stride - padding + j < size for o in range(out))]
    if not used:
        return 0, kernel, padding
    lo, hi = used[0], used[-1] + 1
    new_padding = padding - lo
    # symmetric padding: keep the trim only if the output size stays the same
    if new_padding < 0 or (size + 2 * new_padding - (hi - lo)) // stride + 1 != out:
        return 0, kernel, padding
    return lo, hi, new_padding


# Largest T*H*W of an input whose weight gradient is computed as a forward convolution (measured on a 2-core AVX2
# EPYC, 2 threads: 0.19-0.73x oneDNN's backward-weights time for 3x3x3 kernels up to 8x28²; 0.93x at 16x28²,
# 1.05x at 8x56², and 1.2-1.7x for the (2+1)D 1x3x3 and 3x1x1 kernels, which therefore keep oneDNN's).
WGRAD_MAX_POSITIONS = 8 * 28 * 28


class _Conv3dForwardWGrad(torch.autograd.Function):
    """``F.conv3d`` at stride 1 whose weight gradient is the forward convolution of the input with the output
    gradient, batch and channels swapped: dW[o, i] = sum_n x[n, i] (*) g[n, o]. The input gradient is ATen's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                padding: tuple[int, int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv3d(x, weight, bias, 1, padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1, 1], list(ctx.padding),
                                                         [1, 1, 1], False, [0, 0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = F.conv3d(x.transpose(0, 1), grad.transpose(0, 1), None, 1, ctx.padding).transpose(0, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None


def conv3d_wgrad_as_forward(input: torch.Tensor, weight: torch.Tensor, groups: int, stride: tuple[int, ...],
                            kernel_size: tuple[int, ...]) -> bool:
    """Whether a conv takes `_Conv3dForwardWGrad`: eager CPU autograd without autocast, a full 3-D kernel
    (declared, before trimming), stride 1, one group, and at most `WGRAD_MAX_POSITIONS` input positions."""
    return (input.device.type == "cpu" and weight.requires_grad and torch.is_grad_enabled() and groups == 1
            and stride == (1, 1, 1) and min(kernel_size) > 1 and input.shape[2:].numel() <= WGRAD_MAX_POSITIONS
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())


class TrimmedConv3d(nn.Conv3d):
    """A drop-in ``nn.Conv3d`` (zero padding, no dilation) that skips taps lying wholly in the padding."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (self.padding_mode != "zeros" or isinstance(self.padding, str) or self.dilation != (1, 1, 1)
                or input.dim() != 5):
            return super()._conv_forward(input, weight, bias)
        # under torch.compile the shapes are constants of the graph: trace the plain function, not the cache
        trim = _trim_dim.__wrapped__ if torch.compiler.is_compiling() else _trim_dim
        plan = [trim(int(n), k, s, p)
                for n, k, s, p in zip(input.shape[2:], self.kernel_size, self.stride, self.padding)]
        (t0, t1, pt), (h0, h1, ph), (w0, w1, pw) = plan
        if not all(hi - lo == k for (lo, hi, _), k in zip(plan, self.kernel_size)):
            weight = weight[:, :, t0:t1, h0:h1, w0:w1]
        if conv3d_wgrad_as_forward(input, weight, self.groups, self.stride, self.kernel_size):
            return _Conv3dForwardWGrad.apply(input, weight, bias, (pt, ph, pw))
        return F.conv3d(input, weight, bias, self.stride, (pt, ph, pw), self.dilation, self.groups)


def untrimmed(model: nn.Module) -> nn.Module:
    """Turn every TrimmedConv3d under ``model`` into a plain ``nn.Conv3d`` in place (same weights); returns it.

    For comparisons: the two must give the same outputs, and only the speed may differ.
    """
    for module in model.modules():
        if type(module) is TrimmedConv3d:
            module.__class__ = nn.Conv3d
    return model


class FramewiseMaxPool3d(nn.MaxPool3d):
    """A drop-in ``nn.MaxPool3d`` for kernels of 1 frame: each frame is pooled by the 2-D kernel.

    ``(B,C,T,H,W)`` is viewed as ``(B, C*T, H, W)``; values, indices' winners and gradients are those of
    ``nn.MaxPool3d`` (a max over the same window), but ATen's 2-D kernel is faster on CPU (MTNet's stem pool:
    218 -> 179 ms forward+backward at 4x64x16x56x56, 1 thread). Other kernels fall back to ``nn.MaxPool3d``.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        k, s, p, d = (nn.modules.utils._triple(v) for v in (self.kernel_size, self.stride or self.kernel_size,
                                                            self.padding, self.dilation))
        if k[0] != 1 or s[0] != 1 or p[0] != 0 or self.return_indices or input.dim() != 5:
            return super().forward(input)
        b, c, t, h, w = input.shape
        out = F.max_pool2d(input.reshape(b, c * t, h, w), k[1:], s[1:], p[1:], d[1:], ceil_mode=self.ceil_mode)
        return out.view(b, c, t, *out.shape[2:])


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Leave autocast for a block that must run in its weights' precision (the recurrent cells); a no-op on devices
    without autocast (e.g. ``meta``, where ``torch.autocast`` would raise)."""
    if not torch.amp.is_autocast_available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)
