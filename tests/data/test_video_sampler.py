"""Temporal samplers: lengths, ranges, intervals, short videos, eval determinism, multi-view spacing, workers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from data.pipeline.video_sampler import RandomSampling, SequentialSampling, fit_step, random_clip, uniform_views


def diffs(indices: list[int]) -> set[int]:
    return set(np.diff(indices).tolist())


@pytest.mark.parametrize("n_frames", [1, 3, 7, 8, 22, 23, 100, 1000])
@pytest.mark.parametrize("num", [1, 4, 8, 16])
def test_random_sampling_length_range_and_types(n_frames: int, num: int) -> None:
    sampler = RandomSampling(num, interval=[1, 2, 3], seed=1)
    for _ in range(20):
        idx = sampler.sampling(n_frames)
        assert len(idx) == num and all(type(i) is int for i in idx)
        assert all(0 <= i < n_frames for i in idx)


def test_random_sampling_uses_every_interval_and_fills_the_range() -> None:
    sampler = RandomSampling(8, interval=[1, 2, 4], seed=0)
    seen, starts = set(), set()
    for _ in range(300):
        idx = sampler.sampling(100)
        (step,) = diffs(idx)  # one interval per clip, frames in temporal order
        seen.add(step)
        starts.add(idx[0])
    assert seen == {1, 2, 4}
    assert min(starts) == 0 and max(starts) >= 90  # 100 - 7*1 - 1 = 92 is the last start at interval 1


def test_short_video_shrinks_interval_then_loops() -> None:
    # 10 frames cannot hold 8 frames at interval 3 (22 frames): interval shrinks to 1, still ordered
    idx = RandomSampling(8, interval=3).sampling(10)
    assert diffs(idx) == {1}
    assert fit_step(15, 8, 3) == 2 and fit_step(22, 8, 3) == 3
    # 5 frames < 8: played in a loop, not a static single-frame clip (original bug 20)
    for sampler in (RandomSampling(8, 2), SequentialSampling(8, 2, shuffle=True, fix_cursor=True)):
        assert sampler.sampling(5, v_id=0) == [0, 1, 2, 3, 4, 0, 1, 2]
    assert RandomSampling(4).sampling(1) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="0 frames"):
        random_clip(0, 4, 1, np.random.default_rng(0))


def test_speed_range_and_normal_start() -> None:
    fast = RandomSampling(5, interval=2, speed=(0.5, 1.0), seed=3)
    steps = {np.diff(fast.sampling(200)).max() for _ in range(50)}
    assert min(steps) >= 1 and max(steps) <= 2 and len(steps) > 1
    normal = RandomSampling(4, interval=1, distribution="normal", seed=0)
    starts = np.array([normal.sampling(1003)[0] for _ in range(400)])
    assert abs(starts.mean() - 500) < 30 and starts.std() < 250  # uniform would have std ~289
    with pytest.raises(ValueError, match="distribution"):
        RandomSampling(4, distribution="poisson").sampling(10)


def test_same_seed_same_draws_and_set_num() -> None:
    a, b = RandomSampling(8, [1, 2], seed=5), RandomSampling(8, [1, 2], seed=5)
    assert [a.sampling(300) for _ in range(5)] == [b.sampling(300) for _ in range(5)]
    a.set_num(3)
    assert len(a.sampling(300)) == 3 and len(a.sampling(300, num=6)) == 6
    with pytest.raises(ValueError):
        a.set_num(0)
    with pytest.raises(ValueError):
        RandomSampling(4, interval=[0, 1])


def test_sequential_windows_are_deterministic_regardless_of_call_order() -> None:
    videos = list(range(30))
    first = SequentialSampling(8, 2, shuffle=True, fix_cursor=True, seed=0)
    forward = {v: first.sampling(200 + v, v_id=v) for v in videos}
    second = SequentialSampling(8, 2, shuffle=True, fix_cursor=True, seed=0)
    backward = {v: second.sampling(200 + v, v_id=v) for v in reversed(videos)}
    assert forward == backward
    assert forward == {v: first.sampling(200 + v, v_id=v) for v in videos}  # fix_cursor: same window again
    assert len({tuple(w) for w in forward.values()}) > 5  # windows differ between videos (shuffled)
    assert all(diffs(w) == {2} and w[0] % 15 == 0 for w in forward.values())  # non-overlapping grid (L=15)


def test_sequential_cursor_visits_every_window() -> None:
    sampler = SequentialSampling(4, 1, shuffle=False, fix_cursor=False)
    starts = [sampler.sampling(12, v_id=0)[0] for _ in range(4)]
    assert starts == [0, 4, 8, 0]
    fixed = SequentialSampling(4, 1, fix_cursor=True)
    assert [fixed.sampling(12, v_id=0)[0] for _ in range(2)] == [0, 0]
    # as the original: a failed read stores the cursor, so later calls move on to the next window
    assert fixed.sampling(12, v_id=0, prev_failed=True)[0] == 0
    assert [fixed.sampling(12, v_id=0)[0] for _ in range(2)] == [4, 4]


def test_uniform_views_spacing() -> None:
    views = uniform_views(1000, 16, 2, 10)
    starts = [v[0] for v in views]
    assert len(views) == 10 and all(len(v) == 16 and diffs(v) == {2} for v in views)
    gaps = np.diff(starts)
    assert gaps.max() - gaps.min() <= 1 and starts[0] > 0 and views[-1][-1] < 999
    (centre,) = uniform_views(100, 8, 2, 1)
    assert centre[0] == (100 - 15) // 2
    assert all(v == [0, 1, 2, 0] for v in uniform_views(3, 4, 2, 3))  # short video: looped, identical views
    with pytest.raises(ValueError):
        uniform_views(10, 4, 1, 0)


class _Draws(Dataset):
    def __init__(self) -> None:
        self.random = RandomSampling(8, [1, 2, 3], seed=0)
        self.sequential = SequentialSampling(8, 2, shuffle=True, fix_cursor=True, seed=0)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        info = torch.utils.data.get_worker_info()
        return (torch.tensor(self.random.sampling(1000)), torch.tensor(self.sequential.sampling(500, v_id=i)),
                -1 if info is None else info.id)


def test_workers_draw_differently_but_eval_windows_do_not_depend_on_them() -> None:
    data = _Draws()
    loader = DataLoader(data, batch_size=None, num_workers=2)
    rows = list(loader)
    by_worker = {w: [r.tolist() for r, _, wid in rows if wid == w] for w in (0, 1)}
    assert by_worker[0] and by_worker[1]
    assert by_worker[0][0] != by_worker[1][0]  # the original copied one RandomState into every worker
    assert [s.tolist() for _, s, _ in rows] == [data.sequential.sampling(500, v_id=i) for i in range(8)]
