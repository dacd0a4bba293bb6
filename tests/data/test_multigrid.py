"""Multigrid schedule as plain numbers: shapes (spec §3.6 tables), epoch plans, lr factors, the batch sampler."""
from __future__ import annotations

import pickle
from collections import Counter

import pytest

from data.pipeline.multigrid import (
    MultigridBatchSampler,
    StepShape,
    plan_epoch,
    shard_size,
    stage_sizes,
    step_shape,
)

# Spec §3.6 [computed] shapes of the original: rows long_0..long_3, columns short_0..short_2.
HACS_TABLE = [
    [(384, 4, 200), (768, 4, 142), (1536, 4, 100)],
    [(192, 8, 200), (384, 8, 142), (768, 8, 100)],
    [(96, 8, 284), (192, 8, 200), (384, 8, 142)],
    [(48, 16, 284), (96, 16, 200), (192, 16, 142)],
]
K_TABLE_ENDS = {(0, 0): (256, 4, 158), (0, 1): (512, 4, 112), (0, 2): (1024, 4, 80),
                (3, 0): (32, 16, 224), (3, 1): (64, 16, 158), (3, 2): (128, 16, 112)}


def test_hacs_table_matches_original():
    for stage, row in enumerate(HACS_TABLE):
        for short, expected in enumerate(row):
            assert step_shape((48, 16, 284), stage, short) == expected


def test_224_table_matches_original():
    for (stage, short), expected in K_TABLE_ENDS.items():
        assert step_shape((32, 16, 224), stage, short) == expected


def test_flags_are_independent():
    base = (48, 16, 284)
    assert step_shape(base, None, None) == base
    assert step_shape(base, 0, None) == (384, 4, 200)  # long only: no short-cycle change
    assert [step_shape(base, None, j) for j in range(3)] == [(48, 16, 284), (96, 16, 200), (192, 16, 142)]


def test_tiny_shapes_stay_valid():
    assert step_shape((1, 2, 7), 0, 2) == (32, 1, 2)  # frames floor at 1, side even and >= 2
    assert step_shape((1, 1, 5), None, 1) == (2, 1, 4)  # int(5 // √2) = 3 -> odd -> 4
    with pytest.raises(ValueError):
        step_shape((0, 16, 224), None, None)
    with pytest.raises(ValueError):
        step_shape((8, 16, 224), 4, None)


def test_step_shape_is_a_tuple_that_remembers_its_stage():
    s = step_shape((48, 16, 284), 1, 2)
    b, t, side = s
    assert (b, t, side) == (768, 8, 100) and (s.long_stage, s.short_step) == (1, 2)
    back = pickle.loads(pickle.dumps(s))
    assert back == s and back.long_stage == 1 and back.short_step == 2
    assert s.with_batch(5) == (5, 8, 100) and s.with_batch(5).long_stage == 1


def test_stage_sizes_are_quarters():
    assert stage_sizes(10, True) == [2, 3, 2, 3]
    assert stage_sizes(3, True) == [0, 1, 1, 1]
    assert stage_sizes(10, False) == [10]


@pytest.mark.parametrize("n", [1, 2, 5, 47, 48, 49, 100, 1000, 12345])
@pytest.mark.parametrize("long_cycles,short_cycles", [(False, False), (True, False), (False, True), (True, True)])
def test_plan_uses_every_sample_once(n, long_cycles, short_cycles):
    base = (48, 16, 284)
    plan = plan_epoch(n, base, long_cycles, short_cycles)
    assert sum(s.batch for s in plan) == n
    assert all(s.batch >= 1 for s in plan)
    assert len(plan_epoch(n, base, long_cycles, short_cycles)) == len(plan)
    for i, s in enumerate(plan):
        if short_cycles:
            assert s.short_step == i % 3
            assert (s.frames, s.side) == step_shape(base, s.long_stage, i % 3)[1:]
        else:
            assert s.short_step is None
        assert s.batch <= step_shape(base, s.long_stage, s.short_step).batch
    if long_cycles:
        per_stage = Counter()
        for s in plan:
            per_stage[s.long_stage] += s.batch
        assert [per_stage[k] for k in range(4)] == stage_sizes(n, True)
        assert [s.long_stage for s in plan] == sorted(s.long_stage for s in plan)
    else:
        assert all(s.long_stage is None for s in plan)


def test_plan_numbers():
    # no cycles: ceil(N/B) steps, last one partial (kept)
    plan = plan_epoch(100, (48, 16, 224), False, False)
    assert [tuple(s) for s in plan] == [(48, 16, 224), (48, 16, 224), (4, 16, 224)]
    # long only, N=100, B=4: quarters of 25 -> 32B caps at 25 (1 step), 16 -> 2 steps, 8 -> 4 steps, 4 -> 7 steps
    plan = plan_epoch(100, (4, 16, 224), True, False)
    assert [s.batch for s in plan] == [25, 16, 9, 8, 8, 8, 1] + [4] * 6 + [1]
    # N smaller than one base batch still trains, with the batch capped at the data
    assert [tuple(s) for s in plan_epoch(3, (8, 8, 64), False, False)] == [(3, 8, 64)]
    assert [s.batch for s in plan_epoch(3, (8, 8, 64), True, True)] == [1, 1, 1]
    with pytest.raises(ValueError):
        plan_epoch(0, (8, 8, 64), True, True)


def test_steps_per_epoch_hacs_scale():
    # ≈HACS: 490,000 videos, B=48. The original ran 10,208 / 2,040 / 2,188 / 580 steps (spec §4.4), the last three
    # over ≈50 % of the data; ours covers the whole set once.
    n, base = 490_000, (48, 16, 284)
    lengths = [len(plan_epoch(n, base, lc, sc)) for lc, sc in [(0, 0), (1, 0), (0, 1), (1, 1)]]
    assert lengths == [10209, 4789, 4376, 2055]


def test_shard_size():
    assert [shard_size(10, 3, False), shard_size(10, 3, True), shard_size(9, 3, True)] == [4, 3, 3]


def _epoch(sampler: MultigridBatchSampler, epoch: int) -> list[list[tuple[int, int, int]]]:
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("n,batch,world", [(1000, 8, 1), (1000, 8, 2), (101, 4, 3), (5, 8, 2), (7, 2, 4), (2, 8, 1)])
@pytest.mark.parametrize("cycles", [(True, True), (False, False), (True, False)])
def test_sampler_shards(n, batch, world, cycles):
    base = (batch, 8, 64)
    samplers = [MultigridBatchSampler(n, base, *cycles, rank=r, world_size=world, seed=3) for r in range(world)]
    epochs = [_epoch(s, 2) for s in samplers]
    # same step count and shapes on every rank, as planned
    lengths = {len(e) for e in epochs} | {len(s) for s in samplers}
    assert len(lengths) == 1
    plan = samplers[0].current_plan
    for e in epochs:
        assert [(len(b), b[0][1], b[0][2]) for b in e] == [tuple(p) for p in plan]
        for b in e:
            assert len({(t, s) for _, t, s in b}) == 1
    seen = [idx for e in epochs for b in e for idx, _, _ in b]
    per_rank = [[idx for b in e for idx, _, _ in b] for e in epochs]
    assert len(seen) == shard_size(n, world, False) * world
    assert set(seen) == set(range(n))  # everything covered
    if n % world == 0:
        assert sorted(seen) == list(range(n))  # exactly once
        for a in range(world):
            for b in range(a + 1, world):
                assert not set(per_rank[a]) & set(per_rank[b])  # disjoint


def test_sampler_drop_last_keeps_indices_unique():
    samplers = [MultigridBatchSampler(10, (2, 8, 64), True, True, rank=r, world_size=3, drop_last=True)
                for r in range(3)]
    seen = [idx for s in samplers for b in s for idx, _, _ in b]
    assert len(seen) == 9 and len(set(seen)) == 9
    with pytest.raises(ValueError):
        MultigridBatchSampler(2, (2, 8, 64), True, True, rank=0, world_size=3, drop_last=True)
    with pytest.raises(ValueError):
        MultigridBatchSampler(10, (2, 8, 64), True, True, rank=3, world_size=3)


def test_sampler_is_deterministic_per_seed_and_epoch():
    make = lambda seed: MultigridBatchSampler(50, (4, 8, 64), True, True, seed=seed)  # noqa: E731
    a, b = make(1), make(1)
    assert _epoch(a, 0) == _epoch(b, 0)
    assert _epoch(a, 0) != _epoch(a, 1)
    assert _epoch(a, 1) == _epoch(b, 1)
    assert _epoch(make(2), 0) != _epoch(a, 0)
    ordered = MultigridBatchSampler(50, (4, 8, 64), False, False, shuffle=False)
    assert [i for b in ordered for i, _, _ in b] == list(range(50))


def test_sampler_without_cycles_yields_base_shape():
    sampler = MultigridBatchSampler(10, (4, 16, 112), False, False, seed=0)
    batches = list(sampler)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(t == 16 and s == 112 for b in batches for _, t, s in b)
    assert isinstance(sampler.current_plan[0], StepShape)


def test_clip_warmup_changes_only_the_frames_of_its_epochs():
    sampler = MultigridBatchSampler(10, (4, 8, 32), True, False, seed=0, clip_warmup=(2, 16, 32))
    plain = MultigridBatchSampler(10, (4, 8, 32), True, False, seed=0)
    for epoch, frames in ((0, 16), (1, 16), (2, 8), (5, 8)):
        sampler.set_epoch(epoch)
        plain.set_epoch(epoch)
        warm, base = list(sampler), list(plain)
        # same indices, batch sizes and sides in the same order; T from the warm-up clip length in its epochs
        assert [[(i, s) for i, _, s in b] for b in warm] == [[(i, s) for i, _, s in b] for b in base]
        assert [t for b in warm for _, t, _ in b] == [t * frames // 8 for b in base for _, t, _ in b]
        assert sampler.current_plan == sampler.plan_for(epoch)
    assert len(sampler.plan_for(0)) == len(sampler.plan_for(2)) == len(plain)
    sampler.set_epoch(1, start=2)  # a mid-epoch resume inside the warm-up
    assert len(sampler) == len(plain) - 2 and {t for b in sampler for _, t, _ in b} <= {4, 8, 16}
    with pytest.raises(ValueError, match="clip_warmup"):
        MultigridBatchSampler(10, (4, 8, 32), False, False, clip_warmup=(2, 0, 32))
    small = MultigridBatchSampler(10, (4, 8, 32), False, False, clip_warmup=(1, 16, 24))
    assert {(t, s) for b in small for _, t, s in b} == {(16, 24)}
    small.set_epoch(1)
    assert {(t, s) for b in small for _, t, s in b} == {(8, 32)}
