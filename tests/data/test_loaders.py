"""build_loaders on a tiny real data set (SQLite frame stores written by data.prep.synthetic): planned batch shapes,
val sharding without duplicates, per-epoch determinism (what exact resume relies on), workers 0 and 2."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from data.pipeline.loaders import LoaderConfig, ShardSampler, build_loaders
from data.prep.synthetic import SYNTHETIC_SPEC, generate
from network.config import get_config

CFG = LoaderConfig(clip_length=8, clip_size=32, batch_size=2, train_frame_interval=[1, 2], val_frame_interval=1,
                   long_cycles=True, short_cycles=True, workers=0, seed=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 classes × 4 videos of 12 frames at 32², 3 train + 1 val per class."""
    paths = generate(tmp_path_factory.mktemp("tiny"), num_classes=3, videos_per_class=4, frames=12, size=32, seed=1)
    return replace(SYNTHETIC_SPEC, num_classes=3), paths


def _build(tiny, cfg=CFG, rank=0, world_size=1):
    spec, paths = tiny
    norm = get_config()
    return build_loaders(spec, paths, cfg, norm["mean"], norm["std"], rank=rank, world_size=world_size)


def _check_train_epoch(loaders) -> int:
    plan = loaders.batch_sampler.current_plan
    assert len(loaders.train) == len(plan)
    seen = 0
    for (clips, labels), (b, t, s) in zip(loaders.train, plan, strict=True):
        assert clips.shape == (b, 3, t, s, s) and clips.dtype == torch.float32
        assert labels.shape == (b,) and labels.dtype == torch.int64
        assert torch.isfinite(clips).all() and 0 <= labels.min() and labels.max() < loaders.num_classes
        seen += b
    return seen


@pytest.mark.parametrize("workers", [0, 2])
def test_train_batches_follow_the_plan(tiny, workers):
    loaders = _build(tiny, replace(CFG, workers=workers))
    assert len(loaders.train_set) == 9 and len(loaders.val_set) == 3
    assert loaders.classes == ["move_left", "move_right", "move_up"] and loaders.num_classes == 3
    # long + short cycles over 9 clips at base (2, 8, 32): several shapes, every clip once
    assert len({(t, s) for _, t, s in loaders.batch_sampler.current_plan}) > 2
    for epoch in range(2):
        loaders.set_epoch(epoch)
        assert _check_train_epoch(loaders) == 9
    clips, labels = next(iter(loaders.val))
    assert clips.shape == (2, 3, 8, 32, 32)
    assert loaders.train.persistent_workers == (workers > 0)
    assert not loaders.train.pin_memory or torch.cuda.is_available()


def test_without_cycles_base_shape_and_val_size_argument(tiny):
    loaders = _build(tiny, replace(CFG, long_cycles=False, short_cycles=False, val_clip_length=4,
                                   val_clip_size=24, val_batch_size=3))
    assert [tuple(p) for p in loaders.batch_sampler.current_plan] == [(2, 8, 32)] * 4 + [(1, 8, 32)]
    assert _check_train_epoch(loaders) == 9
    (clips, labels), = list(loaders.val)
    assert clips.shape == (3, 3, 4, 24, 24)
    assert sorted(labels.tolist()) == [0, 1, 2]


def test_two_ranks_share_the_plan_and_split_the_data(tiny):
    ranks = [_build(tiny, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batch_per_rank == 1
    assert ranks[0].batch_sampler.current_plan == ranks[1].batch_sampler.current_plan
    train_idx = [[i for b in r.batch_sampler for i, _, _ in b] for r in ranks]
    assert set(train_idx[0]) | set(train_idx[1]) == set(range(9))
    val_idx = [list(r.val.sampler) for r in ranks]
    assert sorted(val_idx[0] + val_idx[1]) == [0, 1, 2]  # each val clip evaluated exactly once over ranks
    assert sum(len(labels) for r in ranks for _, labels in r.val) == 3
    assert list(ShardSampler(7, 2, 3)) == [2, 5]


def test_epoch_data_is_a_function_of_seed_and_epoch(tiny):
    def epoch_batches(loaders, epoch):
        loaders.set_epoch(epoch)
        return [(clips.clone(), labels.clone()) for clips, labels in loaders.train]

    straight = _build(tiny)
    epoch_batches(straight, 0)
    after_zero = epoch_batches(straight, 1)
    resumed = epoch_batches(_build(tiny), 1)  # a fresh process starting at epoch 1
    assert len(after_zero) == len(resumed)
    for (a, la), (b, lb) in zip(after_zero, resumed):
        assert torch.equal(la, lb) and torch.equal(a, b)
    other = epoch_batches(_build(tiny), 2)
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(after_zero, other))


def test_bad_configuration_messages(tiny):
    spec, paths = tiny
    with pytest.raises(ValueError, match="smaller than the 4 processes"):
        _build(tiny, replace(CFG, batch_size=2), rank=0, world_size=4)
    with pytest.raises(ValueError, match="3 labels but SYNTHETIC has 2 classes"):
        norm = get_config()
        build_loaders(replace(spec, num_classes=2), paths, CFG, norm["mean"], norm["std"])
