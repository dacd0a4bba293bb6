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


@pytest.mark.slow
def test_compiled_sr_block_matches_eager_with_gradients() -> None:
    sr = _identity_like_sr(P, gates=True)
    compiled = torch.compile(sr, backend="aot_eager")
    x = _clips().requires_grad_(True)
    out = compiled(x)
    torch.testing.assert_close(out, sr(x))
    out.sum().backward()
    assert float(sr.lstm.weight_ih_l0.grad.abs().sum()) > 0
    compiled(x)
    assert sr.gate_counts().tolist() == [3.0, 6.0]  # compiled, eager, compiled: counted every time


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


def _three_clips() -> torch.Tensor:
    """(3, P, T, 3, 3): moving, static, moving (the identity-like gate passes samples 0 and 2)."""
    moving, static = _clips()
    return torch.stack([moving, static, torch.roll(moving, 2, dims=1)])


def test_gate_counters_count_passes_per_batch_and_reset() -> None:
    sr = _identity_like_sr(P, gates=True)
    assert sr.gate_counts().tolist() == [0.0, 0.0]
    sr(_three_clips())
    assert sr.gate_counts().tolist() == [2.0, 3.0]
    sr(_clips()[1:])  # one static sample: fails
    assert sr.gate_counts().tolist() == [2.0, 4.0]
    assert "_gate_counts" not in sr.state_dict() and not list(sr.buffers())
    sr.reset_gate_stats()
    assert sr.gate_counts().tolist() == [0.0, 0.0]


def test_counters_started_under_inference_mode_keep_counting_in_training() -> None:
    sr = _identity_like_sr(P, gates=True)
    with torch.inference_mode():
        sr(_three_clips())
    sr(_three_clips().requires_grad_(True)).sum().backward()
    assert sr.gate_counts().tolist() == [4.0, 6.0]


def test_inactive_gate_recalibrates_every_sample_but_still_counts() -> None:
    sr = _identity_like_sr(P, gates=True)
    sr.gate_active = False
    x = _three_clips()
    _, r = sr.squeeze_recur(x)
    torch.testing.assert_close(sr(x), x * r[..., None, None])
    assert sr.gate_counts().tolist() == [2.0, 3.0]
    sr.gate_active = True
    assert torch.equal(sr(x)[1], x[1])


class _Wrapper(torch.nn.Module):
    """Stands in for DDP: the model sits in ``.module``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def test_model_level_pass_rates_switch_and_names() -> None:
    from network.srtg import gate_pass_rates, gated_blocks, reset_gate_stats, set_gates_active

    inner = torch.nn.Sequential()
    inner.add_module("a", _identity_like_sr(P, gates=True))
    inner.add_module("plain", Squeeze_and_Recursion(P))  # gates=False: not a gated block
    inner.add_module("b", _identity_like_sr(P, gates=True))
    model = _Wrapper(inner)
    assert list(gated_blocks(model)) == ["a", "b"]
    rates = gate_pass_rates(model)
    assert list(rates) == ["a", "b"] and all(v != v for v in rates.values())  # NaN: nothing checked yet
    x = _three_clips()
    with torch.no_grad():
        inner.a(x)
        inner.b(x[1:])  # static, moving
    assert gate_pass_rates(model) == pytest.approx({"a": 2 / 3, "b": 1 / 2})
    other_rank = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    assert gate_pass_rates(model, reduce=lambda c: c + other_rank) == pytest.approx({"a": 3 / 4, "b": 1 / 4})
    reset_gate_stats(model)
    assert all(v != v for v in gate_pass_rates(model).values())
    assert set_gates_active(model, False) == 2
    assert not inner.a.gate_active and not inner.b.gate_active and inner.plain.gate_active
    with torch.no_grad():
        _, r = inner.a.squeeze_recur(x)
        torch.testing.assert_close(inner.a(x), x * r[..., None, None])  # the static sample too
    assert set_gates_active(model, True) == 2 and inner.a.gate_active


def test_srtg_builders_pass_the_gate_similarity_to_every_block() -> None:
    from network.registry import create_model
    from network.srtg import gate_pass_rates, gated_blocks

    model = create_model("srtg_r3d_18", num_classes=4, gates=True, gate_similarity="tstd", gate_temperature=0.5)
    blocks = gated_blocks(model)
    assert list(blocks)[:2] == ["layer1.0.sar", "layer1.1.sar"] and len(blocks) == 8
    assert {(b.gate_similarity, b.gate_temperature) for b in blocks.values()} == {("tstd", 0.5)}
    assert "similarity=tstd, temperature=0.5" in repr(blocks["layer1.0.sar"])
    plain = create_model("srtg_r3d_18", num_classes=4)
    assert model.state_dict().keys() == plain.state_dict().keys()
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 32, 32))
    rates = gate_pass_rates(model)
    assert rates["layer4.1.sar"] == 1.0  # T = 1 there: trivially consistent
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert gated_blocks(plain) == {}
    with pytest.raises(ValueError, match="gate similarity must be one of"):
        create_model("srtg_r3d_18", num_classes=4, gates=True, gate_similarity="l2")
    with pytest.raises(ValueError, match="gate temperature"):
        create_model("srtg_r3d_18", num_classes=4, gates=True, gate_temperature=0)
    with pytest.raises(TypeError):
        create_model("r3d_18", num_classes=4, gate_similarity="tcc")


def test_sr_lstm_off_onednn_keeps_values_and_restores_the_flag() -> None:
    import network.srtg as srtg

    torch.manual_seed(0)
    sr = Squeeze_and_Recursion(C)
    x = torch.randn(2, C, T, 4, 5)
    s, r = sr.squeeze_recur(x)
    assert torch.equal(s, x.mean(dim=(3, 4)))  # sum / (H*W) is the mean bit for bit
    with torch.autocast("cpu", enabled=False):
        ref, _ = sr.lstm(x.mean(dim=(3, 4)).permute(2, 0, 1))  # oneDNN's LSTM (flag on)
    torch.testing.assert_close(r, ref.permute(1, 2, 0), rtol=1e-5, atol=1e-6)
    assert torch.backends.mkldnn.enabled
    with srtg._without_onednn_rnn(x):
        assert not torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled
