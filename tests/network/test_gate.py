"""The cycle-consistency check under every similarity, on hand-made frame sequences."""
from __future__ import annotations

import pytest
import torch

from network.gate import SIMILARITIES, _squared_distances, cycle_consistent, gate_keep, get_similarity

T, C = 6, 16
NAMES = list(SIMILARITIES)


def _frames(seed: int = 0, t: int = T) -> torch.Tensor:
    """(t, C) well separated frame vectors."""
    return torch.randn(t, C, generator=torch.Generator().manual_seed(seed))


def _noisy(u: torch.Tensor, std: float, seed: int = 1) -> torch.Tensor:
    return u + std * torch.randn(u.shape, generator=torch.Generator().manual_seed(seed))


def _mixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(24, T, C) pairs from clean matches through noisier ones to unrelated sequences: outcomes differ."""
    us, vs = [], []
    for i in range(24):
        u = _frames(10 + i)
        us.append(u)
        vs.append(_noisy(u, 0.15 * i, seed=100 + i))
    return torch.stack(us), torch.stack(vs)


@pytest.mark.parametrize("name", NAMES)
def test_a_consistent_sequence_passes(name: str) -> None:
    u = _frames()
    assert cycle_consistent(u[None], _noisy(u, 0.01)[None], name).tolist() == [True]


@pytest.mark.parametrize("name", NAMES)
def test_a_shuffled_sequence_with_repeats_fails(name: str) -> None:
    u = _frames()
    assert cycle_consistent(u[None], u[[4, 1, 4, 0, 2, 1]][None], name).tolist() == [False]


@pytest.mark.parametrize("name", NAMES)
def test_a_static_sequence_fails_and_one_frame_passes(name: str) -> None:
    u = _frames()
    static = _frames(2)[:1].expand(T, C)
    assert cycle_consistent(u[None], static[None], name).tolist() == [False]
    assert cycle_consistent(u[None, :1], _frames(3)[None, :1], name).tolist() == [True]  # T = 1: trivially


@pytest.mark.parametrize("name", NAMES)
def test_scale_invariance_holds_exactly_where_claimed(name: str) -> None:
    u, v = _mixed_batch()
    base = cycle_consistent(u, v, name)
    assert 0 < int(base.sum()) < len(base), "the batch must mix passes and failures"
    scaled = [cycle_consistent(a * u, b * v, name) for a, b in ((1, 100), (100, 1), (0.01, 0.01), (3, 0.2))]
    if get_similarity(name).scale_invariant:
        assert all(torch.equal(s, base) for s in scaled)
    else:
        assert not all(torch.equal(s, base) for s in scaled)


def test_temperature_sharpens_the_soft_neighbour() -> None:
    """With a large temperature the soft neighbour is the mean of the frames, so even a match fails."""
    u = _frames()
    v = _noisy(u, 0.01)
    assert cycle_consistent(u[None], v[None], "tcc", temperature=0.1).tolist() == [True]
    assert cycle_consistent(u[None], v[None], "tcc", temperature=1e4).tolist() == [False]


def test_raw_is_the_unscaled_formula() -> None:
    """raw: softmax(-|u-v|^2) without C or temperature (the check before similarities were selectable)."""
    u, v = _mixed_batch()
    u, v = 0.3 * u, 0.3 * v

    def one_way(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(-_squared_distances(a, b), dim=-1)
        soft = (alpha.unsqueeze(-1) * b.unsqueeze(1)).sum(2)
        return (_squared_distances(soft, a).argmin(-1) == torch.arange(a.shape[1])).all(-1)

    expected = one_way(u, v) & one_way(v, u)
    assert 0 < int(expected.sum()) < len(expected)
    assert torch.equal(cycle_consistent(u, v, "raw", temperature=123.0), expected)


def test_time_standardised_two_frame_sequences_always_pass() -> None:
    """T = 2 standardised over time leaves one sign per channel (frames a and -a): every pair cycles unless the
    signs agree on exactly half the channels (a tie; impossible for an odd C), so 'tstd' is only informative
    where T >= 3."""
    u = torch.randn(32, 2, C - 1, generator=torch.Generator().manual_seed(5))
    v = torch.randn(32, 2, C - 1, generator=torch.Generator().manual_seed(6))
    assert cycle_consistent(u, v, "tstd").all()
    assert not cycle_consistent(u, v, "tcc").all()


def test_recal_compares_pooled_with_recalibrated_features() -> None:
    """A multiplier constant over time is a static sequence (fails) but s*r is s rescaled (passes)."""
    s = (_frames().abs() + 0.5).T[None]  # (1, C, T)
    r = torch.full_like(s, 0.8)
    decisions = {name: gate_keep(s, r, name).tolist() for name in NAMES}
    assert decisions == {"raw": [False], "tcc": [False], "cosine": [False], "tstd": [False], "recal": [True]}


def test_unknown_similarity_names_the_choices() -> None:
    with pytest.raises(ValueError, match="raw, tcc, cosine, tstd, recal"):
        cycle_consistent(_frames()[None], _frames()[None], "l1")
