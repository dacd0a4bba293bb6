"""Learning-rate schedules: pure functions of progress in epochs, multigrid scaling, warm-up, validation."""
from __future__ import annotations

import logging
import math

import pytest

from data.pipeline.multigrid import LONG_CYCLE, plan_epoch, step_shape
from train.engine.lr_scheduler import Cosine, MultiStep, build_schedule, multigrid_scale


def test_multistep_decays_at_epoch_boundaries():
    s = MultiStep(0.1, [2, 4], 0.1)
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(1.999) == pytest.approx(0.1)  # last iteration of epoch 1 (0-based): no decay yet
    assert s.lr_at(2.0) == pytest.approx(0.01)  # first iteration of epoch 2
    assert s.lr_at(3.9) == pytest.approx(0.01)
    assert s.lr_at(4.0) == pytest.approx(0.001)
    assert s.lr_at(1e6) == pytest.approx(0.001)
    assert s.lr_at(2.5, scale=0.5) == pytest.approx(0.005)


@pytest.mark.parametrize("iterations", [3, 7, 100])
def test_the_rate_of_an_epoch_does_not_depend_on_its_length(iterations):
    """A resume with another batch size (other iterations per epoch) decays at the same epochs."""
    s = MultiStep(0.02, [2], 0.1)
    per_epoch = [{round(s.lr_at(e + i / iterations), 12) for i in range(iterations)} for e in range(4)]
    assert per_epoch == [{0.02}, {0.02}, {0.002}, {0.002}]


def test_multigrid_scale():
    base = (48, 16, 284)
    assert [multigrid_scale(step_shape(base, k, None)) for k in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert [multigrid_scale(step_shape(base, 1, j)) for j in range(3)] == [0.5, 0.5, 0.5]  # short cycles: unchanged
    assert multigrid_scale(step_shape(base, None, 2)) == 1.0 and multigrid_scale(None) == 1.0
    assert multigrid_scale(step_shape(base, 0, 0).with_batch(3)) == 1.0  # a capped batch keeps its stage's rate
    assert LONG_CYCLE[0][0] == 8


def test_multigrid_profile_over_two_epochs():
    plan = plan_epoch(64, (4, 8, 64), True, True)
    s = MultiStep(0.8, [1], 0.1)
    lrs = [[s.lr_at(e + i / len(plan), multigrid_scale(p)) for i, p in enumerate(plan)] for e in range(2)]
    assert lrs[0][0] == pytest.approx(0.8) and lrs[0][-1] == pytest.approx(0.1)  # 8B stage -> B stage
    assert sorted(set(round(x, 9) for x in lrs[0])) == [0.1, 0.2, 0.4, 0.8]
    assert lrs[1] == pytest.approx([x * 0.1 for x in lrs[0]])  # decayed at epoch 1, same in-epoch profile


def test_min_lr_floor():
    s = MultiStep(1e-4, [1, 2, 3], 0.1)
    assert s.lr_at(3) == pytest.approx(1e-6)
    assert s.lr_at(3, scale=0.125) == pytest.approx(1e-6)


def test_warmup_is_linear_from_a_tenth_then_the_schedule():
    s = MultiStep(1.0, [10], 0.1, warmup_epochs=2)
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(1) == pytest.approx(0.55)
    assert s.lr_at(2) == pytest.approx(1.0) and s.lr_at(9.9) == pytest.approx(1.0)
    assert s.lr_at(10) == pytest.approx(0.1)


def test_cosine_goes_from_base_to_the_floor():
    s = Cosine(0.4, end_epoch=10, warmup_epochs=2)
    assert s.lr_at(0) == pytest.approx(0.04)
    assert s.lr_at(2) == pytest.approx(0.4)
    assert s.lr_at(6) == pytest.approx(0.2)
    assert s.lr_at(10) == pytest.approx(1e-6)
    values = [s.lr_at(2 + k * 0.5) for k in range(17)]
    assert all(b <= a for a, b in zip(values, values[1:]))
    assert s.lr_at(4) == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 0.25)))


@pytest.mark.parametrize("kwargs", [
    {"steps": [3, 2]}, {"steps": [2, 2]}, {"steps": [0, 2]}, {"steps": [1.5]}, {"steps": [True]},
    {"factor": 1.5}, {"factor": 0.0}, {"base_lr": 0.0},
])
def test_validation(kwargs):
    args = {"base_lr": 0.1, "steps": [2, 4], "factor": 0.1} | kwargs
    with pytest.raises(ValueError, match="must"):
        MultiStep(**args)


def test_factory():
    assert isinstance(build_schedule("multistep", 0.1, steps=[1]), MultiStep)
    assert isinstance(build_schedule("cosine", 0.1, end_epoch=3), Cosine)
    with pytest.raises(ValueError, match="--lr-schedule 'step'"):
        build_schedule("step", 0.1)


def test_loading_another_schedule_warns_and_keeps_the_arguments(caplog):
    saved = MultiStep(0.1, [2], 0.1).state_dict()
    mine = MultiStep(0.3, [5], 0.1)
    with caplog.at_level(logging.WARNING, logger="train.engine.lr_scheduler"):
        mine.load_state_dict({**saved, "step_counter": 20, "iterations_per_epoch": 7})  # an older checkpoint
    assert "base_lr: 0.1 -> 0.3" in caplog.text and "steps: [2] -> [5]" in caplog.text
    assert mine.lr_at(2) == pytest.approx(0.3)
