"""MTNet's parts: frame selection by cosine similarity, the GRU squeeze-and-recursion block and MTConv.

Paper: "Right on Time: Multi-Temporal Convolutions for Human Action Recognition in Videos",
Stergiou & Poppe, https://arxiv.org/abs/2011.03949. Module names and state_dict keys follow the original
``network/MTnet.py`` so released checkpoints load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from network.blocks import init_weights
from network.conv import TrimmedConv3d, autocast_off

Streams = tuple[torch.Tensor, torch.Tensor]
Size3 = int | tuple[int, int, int]


def temporal_cossim_pool(x: torch.Tensor) -> torch.Tensor:
    """Keep the ``T // 2`` frames that sit at the centre of the most self-similar frame triplets.

    ``x`` (B, C, T, H, W) with T >= 3 → (B, C, T // 2, H, W). Per sample: the squared cosine similarity (over
    channels, of the spatially averaged features) of each consecutive frame pair, averaged over neighbouring
    pairs, scores every triplet; the centres of the ``T // 2`` best triplets are kept in temporal order.
    The choice is a hard top-k, so no gradient flows through *which* frames are picked.
    """
    b, c, t, h, w = x.shape
    if t < 3:
        raise ValueError(f"temporal_cossim_pool needs at least 3 frames, got {t} (input shape {tuple(x.shape)})")
    g = x.mean(dim=(3, 4))  # (B, C, T)
    pair = F.cosine_similarity(g[:, :, :-1], g[:, :, 1:], dim=1, eps=1e-4).pow(2)  # (B, T-1)
    triplet = F.avg_pool1d(pair.unsqueeze(1), kernel_size=2, stride=1).squeeze(1)  # (B, T-2)
    centres = triplet.topk(t // 2, dim=1).indices.add(1).sort(dim=1).values  # (B, T//2)
    index = centres.view(b, 1, -1, 1, 1).expand(b, c, -1, h, w)
    return x.gather(2, index)


class RecurrentAlignment(nn.Module):
    """MTNet's squeeze-and-recursion block: per-frame, per-channel multipliers from a 2-layer GRU.

    The original called this class ``Squeeze_and_Recursion`` too; it is renamed here so it does not clash with
    the SRTG (LSTM) block of ``network/srtg.py``. The attribute stays ``op`` (keys ``sr_*.op.*``).
    ``x`` (B, C, T, H, W) → ``x · r`` with r (B, C, T, 1, 1) the top GRU layer's outputs over the spatially
    averaged sequence. As in the original there is no sigmoid: r lies in (-1, 1).
    """

    def __init__(self, planes: int, layers: int = 2) -> None:
        super().__init__()
        self.op = nn.GRU(input_size=planes, hidden_size=planes, num_layers=layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Original pooled over (H, W) only when both were > 1 and crashed otherwise; we always average over
        # H, W (identical values whenever the original worked).
        s = x.mean(dim=(3, 4)).permute(2, 0, 1)  # (T, B, C)
        weight = self.op.weight_ih_l0
        # The recurrence runs in the parameters' dtype even under autocast (GRU has no low-precision CPU path).
        with autocast_off(x.device.type):
            r, _ = self.op(s.to(weight.dtype).contiguous())
        r = r.permute(1, 2, 0).to(x.dtype)  # (B, C, T)
        return x * r[..., None, None]


def resize3d(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Trilinear resize of (B, C, T, H, W) to ``size`` (T, H, W), skipped when it would be an identity."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="trilinear")


class MTConv(nn.Module):
    """Multi-temporal convolution: a short and a long stream, with a lateral short → long connection.

    Input and output are pairs ``(short, long)`` of (B, C, T, H, W) tensors. The short stream carries
    ``rate`` of the channels at full resolution; the long stream the rest, at half the temporal and spatial
    resolution. The lateral takes the short conv output (before its norm), averages it (1, 2, 2), keeps the
    most similar frames (:func:`temporal_cossim_pool`, when T > 2), resizes it to the long output and adds
    it through ``conv_short2long``. ``no_lateral`` (used for downsampling identities) drops the lateral.
    With ``groups > 1`` the short conv is grouped and both norms are GroupNorm (the "sub-streams").
    """

    def __init__(self, in_planes: int, out_planes: int, kernel_size: Size3, rate: float = 0.5,
                 stride: Size3 = 1, padding: Size3 = 0, groups: int = 1, bias: bool = False,
                 no_lateral: bool = False) -> None:
        super().__init__()
        if bias:
            # The original accepted ``bias`` and ignored it; checkpoints have no conv biases.
            raise ValueError("MTConv has no conv bias (original checkpoints hold none); pass bias=False")
        groups_short = int(groups * rate)
        groups_short = groups_short if groups_short > 1 else 1
        groups_long = groups - groups_short if groups - groups_short > 1 else 1
        in_short = int(in_planes * rate) // groups_short * groups_short
        out_short = int(out_planes * rate)
        in_long, out_long = in_planes - in_short, out_planes - out_short
        self.no_lateral = no_lateral
        # TrimmedConv3d: deep in the network T is 1-2 frames, so most temporal taps of the 3x3x3 convs meet only
        # padding; skipping them gives the same values (the golden tests) for less work.
        self.conv_short = TrimmedConv3d(in_short, out_short, kernel_size, stride, padding, groups=groups_short,
                                        bias=False)
        self.conv_long = TrimmedConv3d(in_long, out_long, kernel_size, stride, padding, groups=groups_long,
                                       bias=False)
        if not no_lateral:
            self.conv_short2long = nn.Conv3d(out_short, out_long, kernel_size=1, bias=False)
        if groups > 1:
            self.norm_short: nn.Module = nn.GroupNorm(groups_short, out_short)
            self.norm_long: nn.Module = nn.GroupNorm(groups_long, out_long)
        else:
            self.norm_short = nn.BatchNorm3d(out_short)
            self.norm_long = nn.BatchNorm3d(out_long)
        self._initialise_weights()

    def _initialise_weights(self) -> None:
        init_weights(self)  # the original re-applied the network's init inside every MTConv

    def forward(self, x: Streams) -> Streams:
        short, long = self.conv_short(x[0]), self.conv_long(x[1])
        lateral = None
        if not self.no_lateral:
            lateral = F.avg_pool3d(short, kernel_size=(1, 2, 2), stride=(1, 2, 2))
            if lateral.shape[2] > 2:
                lateral = temporal_cossim_pool(lateral)
            # Original resized unconditionally (its size test compared a 3-list with a 2-list); an equal-size
            # trilinear resize is an exact identity, so skipping it changes no value.
            lateral = self.conv_short2long(resize3d(lateral, long.shape[2:]))
        short, long = self.norm_short(short), self.norm_long(long)
        if lateral is not None:
            # Faithful to the original: the SAME norm_long module normalises the lateral too (one set of
            # affine weights; in training its BN running statistics are updated twice per step). A separate
            # norm would need a new checkpoint key, so it is kept as is (spec bug 13).
            long = long + self.norm_long(lateral)
        return short, long
