"""Squeeze-and-Recursion (SR) block with the Temporal Gate of SRTG ("Learn to cycle", Stergiou & Poppe,
https://arxiv.org/abs/2006.08247).

The SR block squeezes each frame of ``x`` (B,C,T,H,W) to a vector by a spatial mean, runs a 2-layer recurrent
cell over the T frames and multiplies its hidden states back onto ``x``. The temporal gate keeps that recalibration
only for samples whose pooled features and recurrent features are cycle-consistent (Temporal Cycle-Consistency,
Dwibedi et al. 2019, https://arxiv.org/abs/1904.07846).
"""
from __future__ import annotations

import torch
import torch.nn as nn

RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU}
SR_INITS = ("identity", "pytorch")


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B,T,C), (B,S,C) -> (B,T,S)`` squared L2 over channels (broadcast, so no autocast-lowered matmul)."""
    return (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)


def cycle_back_to_self(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One TCC direction. ``u, v`` are ``(B,T,C)`` frame sequences; returns ``(B,)`` bool.

    For every frame ``u_i`` the soft nearest neighbour in ``v`` is ``v~_i = sum_j softmax_j(-|u_i - v_j|^2) v_j``;
    frame i cycles back when the nearest frame of ``u`` to ``v~_i`` is ``u_i`` itself. A sample passes when every
    frame cycles back. The decision is a hard argmin, so it is computed on detached float32 copies.
    """
    u = u.detach().float()
    v = v.detach().float()
    alpha = torch.softmax(-_squared_distances(u, v), dim=-1)  # (B,T,T)
    v_soft = (alpha.unsqueeze(-1) * v.unsqueeze(1)).sum(2)  # (B,T,C)
    back = _squared_distances(v_soft, u).argmin(dim=-1)  # (B,T)
    frames = torch.arange(u.shape[1], device=u.device)
    return (back == frames).all(dim=-1)


def cycle_consistent(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(B,T,C), (B,T,C) -> (B,)`` bool: consistent in both directions (u->v->u AND v->u->v)."""
    return cycle_back_to_self(u, v) & cycle_back_to_self(v, u)


class Squeeze_and_Recursion(nn.Module):  # noqa: N801 (the original's class name)
    """SR block: ``x (B,C,T,H,W) -> x * r`` with ``r (B,C,T,1,1)`` the recurrent hidden states over frames.

    ``planes`` is C. The recurrent cell is ``nn.LSTM(planes, planes, layers)`` stored as ``lstm`` (the original's
    key, ``sar.lstm.weight_ih_l0``); ``recurrent='gru'`` stores an ``nn.GRU`` as ``gru`` instead, so a GRU
    checkpoint can never be mistaken for an LSTM one. Input is sequence-first with zero initial state, as in
    the original. ``gates=True`` applies the temporal gate (see ``forward``). ``active=False`` bypasses the
    block (returns ``x``), which gives the SR-free backbone used by the reference outputs.
    ``init`` sets the recurrent biases, see :meth:`reset_recurrent_biases` (``'pytorch'``: the original's).
    """

    def __init__(self, planes: int, layers: int = 2, gates: bool = False, recurrent: str = "lstm",
                 init: str = "identity") -> None:
        super().__init__()
        if recurrent not in RECURRENT:
            raise ValueError(f"recurrent must be one of {sorted(RECURRENT)}, got '{recurrent}'")
        if init not in SR_INITS:
            raise ValueError(f"SR init must be one of {', '.join(SR_INITS)}, got '{init}'")
        self.recurrent = recurrent
        self.gate = gates  # the original's attribute name; a flag, not a parameter
        self.active = True
        setattr(self, recurrent, RECURRENT[recurrent](input_size=planes, hidden_size=planes, num_layers=layers))
        if init == "identity":
            self.reset_recurrent_biases()

    @torch.no_grad()
    def reset_recurrent_biases(self, bias: float = 2.0) -> None:
        """Bias the cell so the multiplier ``r`` starts near 1 (about 0.6-0.85) instead of near 0.

        Original did: PyTorch's default init, where the hidden states are about 0.01-0.06, so the 8 SR blocks
        of srtg_r3d_18 shrink the fc input ~150x (6e-3 vs 0.86 for r3d_18; 0.40 with this init); we measured
        that srtg_r3d_18 then stays at chance (loss ln 8 for 60 SGD steps at lr 0.1-1.0) on the synthetic set,
        and trains with this init. We set every bias to 0, then ``bias_ih`` of the LSTM's input, cell and output
        gates to ``+bias`` (GRU: update gate ``-bias``, candidate ``+bias``), so ``r`` is positive and near 1
        for any input. Weights keep PyTorch's init; keys and shapes are unchanged.
        """
        rnn = self.rnn
        h = rnn.hidden_size
        for name, p in rnn.named_parameters():
            if not name.startswith("bias"):
                continue
            p.zero_()
            if not name.startswith("bias_ih"):
                continue
            if self.recurrent == "lstm":  # gate order i, f, g, o
                p[:h] = bias
                p[2 * h:] = bias
            else:  # gate order r, z, n
                p[h:2 * h] = -bias
                p[2 * h:] = bias

    @property
    def rnn(self) -> nn.LSTM | nn.GRU:
        """The recurrent cell (``self.lstm`` or ``self.gru``)."""
        return getattr(self, self.recurrent)

    def squeeze_recur(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B,C,T,H,W) -> (s, r)``: frame-wise spatial mean ``s`` and recurrent hidden states ``r``, both (B,C,T)."""
        # The original average-pooled only when H > 1 and W > 1 and crashed when just one of them was 1;
        # the mean over (H, W) is the same pooling for every size.
        s = x.mean(dim=(3, 4))
        rnn = self.rnn
        seq = s.permute(2, 0, 1).to(rnn.weight_ih_l0.dtype)  # (T,B,C), sequence-first
        # The cell runs on T pooled vectors only (cheap), so it stays in the weights' precision under autocast;
        # CPU autocast would lower nn.LSTM to bfloat16, which oneDNN does not support on every CPU.
        with torch.autocast(device_type=x.device.type, enabled=False):
            hidden, _ = rnn(seq)
        return s, hidden.permute(1, 2, 0).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,C,T,H,W) -> (B,C,T,H,W)``.

        No sigmoid: the multiplier is the raw hidden state in (-1, 1), as in the original (kept so released
        checkpoints behave the same; with many blocks activations shrink).
        Gate: the original's ``soft_nnc`` always returned an empty set, so its gates=True was an identity block
        whose LSTM got no gradient; the paper describes a cycle-consistency check between the pooled and the
        recurrent features, which we do, per sample, in both directions, keeping ``x * r`` only where it holds.
        """
        if not self.active:
            return x
        s, r = self.squeeze_recur(x)
        out = x * r.unsqueeze(-1).unsqueeze(-1)
        if not self.gate:
            return out
        keep = cycle_consistent(s.transpose(1, 2), r.transpose(1, 2))
        return torch.where(keep.view(-1, 1, 1, 1, 1), out, x)

    def extra_repr(self) -> str:
        return f"gates={self.gate}, active={self.active}"
