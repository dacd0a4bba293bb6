"""The SR blocks' recurrent cells (``nn.LSTM``, ``nn.GRU``) run layer by layer with their input projections hoisted.

The SR blocks feed a 2-layer cell with a few pooled frames (T = 1-16) of a small batch. ATen's CPU kernels
multiply the input and hidden weights at every step, so the backward pass writes one full weight gradient per
step and adds them up: at layer4 of srtg_r3d_18 that is a 2048x512 matrix per step for a batch of 4. Here each
layer projects its whole input sequence in one matrix product (one weight gradient for all steps), skips the
hidden product of the first step (the initial state is zero, so only ``b_hh`` remains), and applies the
sigmoids of all gates in one call. The parameters are the module's own (state_dict unchanged); the outputs
equal ``module(seq)[0]`` up to float rounding (tested against it, values and gradients).
"""
from __future__ import annotations

import torch
import torch.nn as nn



def _initial_state(x: torch.Tensor, hidden: int) -> torch.Tensor | None:
    """``None`` (a zero state whose hidden product is skipped), or real zeros for a single step: then the hidden
    weights still take part and get a zero gradient, as with the module, so weight decay, momentum and DDP's
    gradient buckets see them as usual."""
    return x.new_zeros(x.shape[1], hidden) if x.shape[0] == 1 else None


def _lstm_layer(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
                b_hh: torch.Tensor) -> torch.Tensor:
    """One LSTM layer from a zero state: ``x (T, B, I)`` → hidden states ``(T, B, H)`` (gate order i, f, g, o)."""
    t_len, batch, _ = x.shape
    hidden = w_hh.shape[1]
    gates_x = torch.addmm(b_ih + b_hh, x.reshape(t_len * batch, -1), w_ih.t()).view(t_len, batch, 4 * hidden)
    h = _initial_state(x, hidden)
    c: torch.Tensor | None = None
    out = []
    for t in range(t_len):
        gates = gates_x[t] if h is None else torch.addmm(gates_x[t], h, w_hh.t())
        act = torch.sigmoid(gates)  # the g slice is replaced by its tanh below
        i, f, o = act[:, :hidden], act[:, hidden:2 * hidden], act[:, 3 * hidden:]
        g = torch.tanh(gates[:, 2 * hidden:3 * hidden])
        c = i * g if c is None else torch.addcmul(f * c, i, g)
        h = o * torch.tanh(c)
        out.append(h)
    return torch.stack(out)


def _gru_layer(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
               b_hh: torch.Tensor) -> torch.Tensor:
    """One GRU layer from a zero state: ``x (T, B, I)`` → hidden states ``(T, B, H)`` (gate order r, z, n)."""
    t_len, batch, _ = x.shape
    hidden = w_hh.shape[1]
    gates_x = torch.addmm(b_ih, x.reshape(t_len * batch, -1), w_ih.t()).view(t_len, batch, 3 * hidden)
    h = _initial_state(x, hidden)
    out = []
    for t in range(t_len):
        gx = gates_x[t]
        gh = b_hh.expand(batch, -1) if h is None else torch.addmm(b_hh, h, w_hh.t())
        rz = torch.sigmoid(gx[:, :2 * hidden] + gh[:, :2 * hidden])
        r, z = rz[:, :hidden], rz[:, hidden:]
        n = torch.tanh(torch.addcmul(gx[:, 2 * hidden:], r, gh[:, 2 * hidden:]))
        h = n - z * n if h is None else torch.addcmul(n, z, h - n)  # (1 - z) n + z h
        out.append(h)
    return torch.stack(out)


_LAYERS = {nn.LSTM: _lstm_layer, nn.GRU: _gru_layer}


def unrolled(rnn: nn.Module) -> bool:
    """True for the cells :func:`recurrent_states` unrolls: a plain uni-directional LSTM/GRU with biases."""
    return (type(rnn) in _LAYERS and rnn.bias and not rnn.bidirectional and not rnn.batch_first
            and rnn.dropout == 0 and getattr(rnn, "proj_size", 0) == 0)


def recurrent_states(rnn: nn.LSTM | nn.GRU, seq: torch.Tensor) -> torch.Tensor:
    """Top-layer hidden states ``(T, B, H)`` of ``rnn`` over ``seq (T, B, I)`` from a zero state.

    Unrolled here on CPU (see the module docstring); elsewhere (cuDNN on CUDA) and for cells this does not
    cover, the module itself runs.
    """
    if seq.device.type != "cpu" or not unrolled(rnn):
        return rnn(seq)[0]
    layer = _LAYERS[type(rnn)]
    out = seq
    for k in range(rnn.num_layers):
        out = layer(out, getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}"),
                    getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}"))
    return out
