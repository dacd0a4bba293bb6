"""Squeeze-and-Recursion (SR) block with the Temporal Gate of SRTG ("Learn to cycle", Stergiou & Poppe,
https://arxiv.org/abs/2006.08247).

The SR block squeezes each frame of ``x`` (B,C,T,H,W) to a vector by a spatial mean, runs a 2-layer recurrent
cell over the T frames and multiplies its hidden states back onto ``x``. The temporal gate keeps that recalibration
only for samples whose pooled features and recurrent features are cycle-consistent (Temporal Cycle-Consistency,
Dwibedi et al. 2019, https://arxiv.org/abs/1904.07846), computed by :mod:`network.gate`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

# The check itself lives in network.gate; re-exported here for callers of the original module.
from network.conv import autocast_off
from network.gate import (  # noqa: F401
    DEFAULT_SIMILARITY,
    DEFAULT_TEMPERATURE,
    _squared_distances,
    check_temperature,
    cycle_back_to_self,
    cycle_consistent,
    gate_keep,
    get_similarity,
)
from network.weights import strip_wrappers

RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU}
SR_INITS = ("identity", "pytorch")


class Squeeze_and_Recursion(nn.Module):  # noqa: N801 (the original's class name)
    """SR block: ``x (B,C,T,H,W) -> x * r`` with ``r (B,C,T,1,1)`` the recurrent hidden states over frames.

    ``planes`` is C. The recurrent cell is ``nn.LSTM(planes, planes, layers)`` stored as ``lstm`` (the original's
    key, ``sar.lstm.weight_ih_l0``); ``recurrent='gru'`` stores an ``nn.GRU`` as ``gru`` instead, so a GRU
    checkpoint can never be mistaken for an LSTM one. Input is sequence-first with zero initial state, as in
    the original. ``gates=True`` applies the temporal gate (see ``forward``). ``active=False`` bypasses the
    block (returns ``x``), which gives the SR-free backbone used by the reference outputs.
    ``init`` sets the recurrent biases, see :meth:`reset_recurrent_biases` (``'pytorch'``: the original's).
    ``gate_similarity`` (a name of ``network.gate.SIMILARITIES``) and ``gate_temperature`` (its softmax
    temperature) choose how the gate compares the sequences. A gated block counts, on the input's device and
    outside the state_dict, how many samples passed (:meth:`gate_counts`); ``gate_active=False`` (the warm-up)
    still runs and counts the check but recalibrates every sample.
    """

    def __init__(self, planes: int, layers: int = 2, gates: bool = False, recurrent: str = "lstm",
                 init: str = "identity", gate_similarity: str = DEFAULT_SIMILARITY,
                 gate_temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__()
        if recurrent not in RECURRENT:
            raise ValueError(f"recurrent must be one of {sorted(RECURRENT)}, got '{recurrent}'")
        if init not in SR_INITS:
            raise ValueError(f"SR init must be one of {', '.join(SR_INITS)}, got '{init}'")
        self.recurrent = recurrent
        self.gate = gates  # the original's attribute name; a flag, not a parameter
        self.active = True
        self.set_gate(gate_similarity, gate_temperature)
        self.gate_active = True
        # [passed, checked] samples: a plain attribute, not a buffer, so no state_dict key and no DDP broadcast;
        # a tensor, not ints, so torch.compile does not recompile as it changes.
        self._gate_counts: torch.Tensor | None = None
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
        # sum / (H*W) equals x.mean(dim=(3, 4)) bit for bit, but its backward is a broadcast view of the (B,C,T)
        # gradient instead of a full-size (B,C,T,H,W) division (measured: benchmarks/profile_ops.py).
        s = x.sum(dim=(3, 4)) / (x.shape[3] * x.shape[4])
        rnn = self.rnn
        seq = s.permute(2, 0, 1).to(rnn.weight_ih_l0.dtype)  # (T,B,C), sequence-first
        # The cell runs on T pooled vectors only (cheap), so it stays in the weights' precision under autocast;
        # CPU autocast would lower nn.LSTM to bfloat16, which oneDNN does not support on every CPU.
        with autocast_off(x.device.type), _without_onednn_rnn(x):
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
        keep = gate_keep(s, r, self.gate_similarity, self.gate_temperature)
        self._count_gate(keep)
        if not self.gate_active:
            return out
        return torch.where(keep.view(-1, 1, 1, 1, 1), out, x)

    def set_gate(self, similarity: str, temperature: float) -> None:
        """Choose the gate's similarity (a name of ``network.gate.SIMILARITIES``) and softmax temperature."""
        get_similarity(similarity)
        self.gate_similarity = similarity
        self.gate_temperature = check_temperature(temperature)

    def _count_gate(self, keep: torch.Tensor) -> None:
        """Add a batch's ``(B,)`` gate decisions to the counters (device tensors: no host sync)."""
        batch = torch.stack([keep.sum(), torch.ones_like(keep, dtype=torch.long).sum()])
        # out of place: a counter created under inference_mode cannot be updated in place outside it
        counts = self._gate_counts
        self._gate_counts = batch if counts is None else counts.to(batch.device) + batch

    def gate_counts(self) -> torch.Tensor:
        """``(2,)`` float64 ``[passed, checked]`` samples since the last :meth:`reset_gate_stats`."""
        if self._gate_counts is None:
            return torch.zeros(2, dtype=torch.float64, device=self.rnn.weight_ih_l0.device)
        return self._gate_counts.double()

    def reset_gate_stats(self) -> None:
        """Zero the gate's pass counters."""
        self._gate_counts = None

    def extra_repr(self) -> str:
        text = f"gates={self.gate}, active={self.active}"
        if self.gate:
            text += f", similarity={self.gate_similarity}, temperature={self.gate_temperature:g}"
        return text


@contextmanager
def _without_onednn_rnn(x: torch.Tensor) -> Iterator[None]:
    """On CPU, run ``nn.LSTM`` on ATen's own kernels instead of oneDNN's RNN primitive.

    On the SR block's few time steps and small batches oneDNN's RNN primitive is the slower one: at batch 4,
    16x112^2, srtg_r3d_18's eight LSTMs took 1.5x the CPU time with it (forward+backward, 1 thread).
    Both are float32 LSTMs; their outputs differ by rounding only (~2e-7).
    """
    if x.device.type != "cpu" or not torch.backends.mkldnn.enabled:
        yield
        return
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True


# Model-level API: the gated SR blocks of a (possibly DDP-wrapped or compiled) model.

def gated_blocks(model: nn.Module) -> dict[str, Squeeze_and_Recursion]:
    """``{name: block}`` of every SR block built with ``gates=True``, names like ``layer1.0.sar``."""
    return {strip_wrappers(name): m for name, m in model.named_modules()
            if isinstance(m, Squeeze_and_Recursion) and m.gate}


def set_gates_active(model: nn.Module, active: bool) -> int:
    """Apply (``True``) or skip (``False``: every sample gets ``x*r``) the gate of every gated block (the
    ``--gates-from-epoch`` warm-up); returns the number of blocks switched. Skipped gates still count."""
    blocks = gated_blocks(model)
    for block in blocks.values():
        block.gate_active = bool(active)
    return len(blocks)


def reset_gate_stats(model: nn.Module) -> None:
    """Zero the pass counters of every gated block (e.g. at the start of each epoch and phase)."""
    for block in gated_blocks(model).values():
        block.reset_gate_stats()


def gate_pass_rates(model: nn.Module, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
                    ) -> dict[str, float]:
    """``{block name: passed / checked samples}`` since the last reset (NaN for a block that checked none).

    One host synchronisation for all blocks. ``reduce`` sums the ``(N, 2)`` float64 counts over processes
    (e.g. ``train.distributed.all_reduce_sum``) before dividing.
    """
    blocks = gated_blocks(model)
    if not blocks:
        return {}
    counts = torch.stack([block.gate_counts() for block in blocks.values()])
    if reduce is not None:
        counts = reduce(counts)
    rates = []
    for passed, total in counts.tolist():
        rates.append(passed / total if total else float("nan"))
    return dict(zip(blocks, rates))
