"""Squeeze-and-Recursion block and its cycle-consistency temporal gate on hand-made sequences."""
from __future__ import annotations

import pytest
import torch

from network.srtg import Squeeze_and_Recursion, cycle_back_to_self, cycle_consistent

T, C = 6, 16


def _frames(seed: int = 0) -> torch.Tensor:
    """(T, C) well separated frame vectors."""
    return torch.randn(T, C, generator=torch.Generator().manual_seed(seed))


def test_matching_sequences_are_consistent() -> None:
    u = _frames()
    v = u + 0.01 * torch.randn(T, C, generator=torch.Generator().manual_seed(1))
    assert cycle_consistent(u[None], v[None]).tolist() == [True]


def test_repeated_frames_break_the_cycle() -> None:
    u = _frames()
    v = u[[0, 0, 1, 1, 2, 2]]  # many-to-one: frames 3-5 of u have no partner of their own
    assert cycle_back_to_self(u[None], v[None]).tolist() == [False]
    assert cycle_back_to_self(v[None], u[None]).tolist() == [False]  # duplicates cannot all return to themselves
    assert cycle_consistent(u[None], v[None]).tolist() == [False]


def test_shuffle_with_resampling_fails_but_pure_permutation_cycles() -> None:
    u = _frames()
    resampled = u[[4, 1, 4, 0, 2, 1]]
    assert cycle_consistent(u[None], resampled[None]).tolist() == [False]
    # TCC checks a one-to-one correspondence, not frame order: a permutation still cycles back.
    assert cycle_consistent(u[None], u[[3, 0, 5, 1, 4, 2]][None]).tolist() == [True]


def test_static_sample_is_inconsistent_and_batch_is_per_sample() -> None:
    u = torch.stack([_frames(), _frames(2)[:1].expand(T, C)])  # sample 1: every frame identical
    v = u + 0.01
    assert cycle_consistent(u, v).tolist() == [True, False]


def test_gate_does_not_mutate_inputs() -> None:
    u, v = _frames()[None], _frames(3)[None]
    u0, v0 = u.clone(), v.clone()
    cycle_consistent(u, v)
    assert torch.equal(u, u0) and torch.equal(v, v0)


def test_gate_compiles_without_graph_breaks() -> None:
    """fullgraph=True fails on .item()/.nonzero()/data-dependent branches, i.e. on any host sync."""
    u = torch.stack([_frames(), _frames(2)[:1].expand(T, C)])
    compiled = torch.compile(cycle_consistent, fullgraph=True, backend="eager")
    assert compiled(u, u + 0.01).tolist() == [True, False]


def _identity_like_sr(planes: int, gates: bool) -> Squeeze_and_Recursion:
    """SR block whose LSTM maps each frame to ~itself: input gate and output gate open, forget gate shut,
    no recurrence, candidate = tanh(s). So r_t = tanh(tanh(tanh(tanh(s_t)))) ~ s_t for small s."""
    sr = Squeeze_and_Recursion(planes, gates=gates)
    with torch.no_grad():
        for layer in range(2):
            w_ih, w_hh = getattr(sr.lstm, f"weight_ih_l{layer}"), getattr(sr.lstm, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(sr.lstm, f"bias_ih_l{layer}"), getattr(sr.lstm, f"bias_hh_l{layer}")
            w_ih.zero_()
            w_hh.zero_()
            b_hh.zero_()
            w_ih[2 * planes:3 * planes] = torch.eye(planes)
            b_ih.copy_(torch.cat([torch.full((planes,), 10.0), torch.full((planes,), -10.0),
                                  torch.zeros(planes), torch.full((planes,), 10.0)]))
    return sr


P = 64  # SR width in the module tests


def _clips() -> torch.Tensor:
    """(2, P, T, 3, 3): sample 0 has distinct frames (consistent), sample 1 is a static clip.

    Scale 0.3 keeps tanh near-linear while frames stay far apart relative to the softmax (which, as in the
    paper's formula, has no temperature: much smaller activations would make it almost uniform)."""
    g = torch.Generator().manual_seed(0)
    moving = 0.3 * torch.randn(P, T, generator=g)
    static = 0.3 * torch.randn(P, 1, generator=g).expand(P, T)
    return torch.stack([moving, static])[..., None, None].expand(2, P, T, 3, 3).contiguous()


def test_sr_block_gates_per_sample_and_gradients_reach_the_lstm() -> None:
    sr = _identity_like_sr(P, gates=True)
    x = _clips().requires_grad_(True)
    x0 = x.detach().clone()
    out = sr(x)
    _, r = sr.squeeze_recur(x)
    torch.testing.assert_close(out[0], (x * r[..., None, None])[0])
    assert torch.equal(out[1], x[1])
    out.sum().backward()
    assert torch.equal(x.detach(), x0)
    grads = [p.grad for p in sr.lstm.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_inconsistent_samples_give_the_lstm_no_gradient() -> None:
    sr = _identity_like_sr(P, gates=True)
    x = _clips()[1:].requires_grad_(True)
    out = sr(x)
    assert torch.equal(out, x)
    out.sum().backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in sr.lstm.parameters())
    assert torch.equal(x.grad, torch.ones_like(x))


def test_gates_off_recalibrates_every_sample_and_bypass_is_identity() -> None:
    sr = Squeeze_and_Recursion(C)
    x = torch.randn(2, C, T, 4, 5)
    _, r = sr.squeeze_recur(x)
    torch.testing.assert_close(sr(x), x * r[..., None, None])
    sr.active = False
    assert sr(x) is x


@pytest.mark.parametrize("shape", [(2, C, 4, 1, 5), (2, C, 4, 5, 1), (2, C, 1, 1, 1)])
def test_squeeze_handles_unit_spatial_dims(shape: tuple[int, ...]) -> None:
    """The original crashed when exactly one of H, W was 1."""
    sr = Squeeze_and_Recursion(C, gates=True)
    assert sr(torch.randn(shape)).shape == shape


def test_state_dict_keys_and_gru_option() -> None:
    lstm = Squeeze_and_Recursion(64)
    assert sorted(lstm.state_dict()) == sorted(f"lstm.{w}_{k}_l{i}" for w in ("weight", "bias")
                                               for k in ("ih", "hh") for i in (0, 1))
    assert sum(p.numel() for p in lstm.parameters()) == 66_560  # 16 p^2 + 16 p
    assert Squeeze_and_Recursion(64, gates=True).state_dict().keys() == lstm.state_dict().keys()
    gru = Squeeze_and_Recursion(8, recurrent="gru", gates=True)
    assert all(k.startswith("gru.") for k in gru.state_dict())
    assert gru(torch.randn(2, 8, 3, 2, 2)).shape == (2, 8, 3, 2, 2)
    with pytest.raises(ValueError, match="recurrent must be one of"):
        Squeeze_and_Recursion(8, recurrent="rnn")


def test_autocast_bfloat16_keeps_dtype() -> None:
    sr = _identity_like_sr(P, gates=True)
    x = _clips().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sr(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert torch.equal(out[1], x[1])


def test_compiled_sr_block_matches_eager_with_gradients() -> None:
    sr = _identity_like_sr(P, gates=True)
    compiled = torch.compile(sr, backend="aot_eager")
    x = _clips().requires_grad_(True)
    out = compiled(x)
    torch.testing.assert_close(out, sr(x))
    out.sum().backward()
    assert float(sr.lstm.weight_ih_l0.grad.abs().sum()) > 0


@pytest.mark.parametrize("recurrent", ["lstm", "gru"])
def test_identity_init_starts_the_multiplier_near_one_with_the_same_keys(recurrent: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 16, 6, 4, 4)
    ident = Squeeze_and_Recursion(16, recurrent=recurrent)
    orig = Squeeze_and_Recursion(16, recurrent=recurrent, init="pytorch")
    r_ident = ident.squeeze_recur(x)[1]
    r_orig = orig.squeeze_recur(x)[1]
    assert r_ident.min() > 0.3 and r_ident.mean() > 0.6
    assert r_orig.abs().mean() < 0.3
    assert {k: v.shape for k, v in ident.state_dict().items()} == {k: v.shape for k, v in orig.state_dict().items()}
    with pytest.raises(ValueError, match="SR init"):
        Squeeze_and_Recursion(16, init="ones")


def test_sr_init_reaches_every_block_of_srtg_r3d_18() -> None:
    from network.registry import create_model

    model = create_model("srtg_r3d_18", num_classes=4, sr_init="pytorch")
    biases = [m.lstm.bias_ih_l0 for m in model.modules() if isinstance(m, Squeeze_and_Recursion)]
    assert len(biases) == 8 and all(b.abs().max() < 1 for b in biases)
    model = create_model("srtg_r3d_18", num_classes=4)
    assert all(m.lstm.bias_ih_l0.max() == 2 for m in model.modules() if isinstance(m, Squeeze_and_Recursion))
