"""MultiFactorScheduler: multi-step decay at epochs, multigrid scaling, validation, exact resume."""
from __future__ import annotations

import logging

import pytest

from data.multigrid import lr_scale, plan_epoch
from train.lr_scheduler import MultiFactorScheduler


def test_decay_at_epoch_boundaries():
    s = MultiFactorScheduler(base_lr=0.1, steps=[2, 4], factor=0.1, iterations_per_epoch=10)
    assert s.iteration_steps == [20, 40]
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(19) == pytest.approx(0.1)  # last iteration of epoch 1 (0-based): no decay yet
    assert s.lr_at(20) == pytest.approx(0.01)  # first iteration of epoch 2
    assert s.lr_at(39) == pytest.approx(0.01)
    assert s.lr_at(40) == pytest.approx(0.001)
    assert s.lr_at(10**6) == pytest.approx(0.001)
    assert s.lr_at(25, scale=0.5) == pytest.approx(0.005)


def test_update_follows_lr_at_and_logs(caplog):
    with caplog.at_level(logging.INFO, logger="train.lr_scheduler"):
        s = MultiFactorScheduler(base_lr=0.1, steps=[1, 3], factor=0.5, iterations_per_epoch=4)
        got = [s.update() for _ in range(14)]
    assert got == [s.lr_at(i) for i in range(14)]
    assert got[3] == pytest.approx(0.1) and got[4] == pytest.approx(0.05) and got[12] == pytest.approx(0.025)
    assert s.step_counter == 14 and s.get_lr() == got[-1]
    text = caplog.text
    assert "Iter 0: start with learning rate: 1.00000e-01 (next lr step: 4)" in text
    assert "Iter: 4, change learning rate to 5.00000e-02 for step [4:12)" in text
    assert "Iter: 12, change learning rate to 2.50000e-02 for step [12:Inf)" in text


def test_multigrid_scale_over_an_epoch():
    base = (4, 8, 64)
    plan = plan_epoch(64, base, True, True)
    s = MultiFactorScheduler(base_lr=0.8, steps=[1], factor=0.1, iterations_per_epoch=len(plan))
    lrs = [s.update(lr_scale(p)) for p in plan] + [s.update(lr_scale(p)) for p in plan]
    first, second = lrs[:len(plan)], lrs[len(plan):]
    assert first[0] == pytest.approx(0.8) and first[-1] == pytest.approx(0.1)  # 8B stage -> B stage
    assert sorted(set(round(x, 9) for x in first)) == [0.1, 0.2, 0.4, 0.8]
    assert second == pytest.approx([x * 0.1 for x in first])  # decayed at epoch 1, same in-epoch profile


def test_no_multigrid_means_constant_lr_within_epoch():
    s = MultiFactorScheduler(base_lr=0.05, steps=[40, 70, 95], factor=0.1, iterations_per_epoch=100)
    assert {s.update() for _ in range(100)} == {0.05}  # the original halved it every quarter epoch


def test_min_lr_floor():
    s = MultiFactorScheduler(base_lr=1e-4, steps=[1, 2, 3], factor=0.1, iterations_per_epoch=1)
    assert s.lr_at(3) == pytest.approx(1e-6)
    assert s.lr_at(3, scale=0.125) == pytest.approx(1e-6)


@pytest.mark.parametrize("kwargs", [
    {"steps": [3, 2]}, {"steps": [2, 2]}, {"steps": [0, 2]}, {"steps": [1.5]}, {"steps": [True]},
    {"factor": 1.5}, {"factor": 0.0}, {"base_lr": 0.0}, {"iterations_per_epoch": 0},
])
def test_validation(kwargs):
    args = {"base_lr": 0.1, "steps": [2, 4], "factor": 0.1, "iterations_per_epoch": 5} | kwargs
    with pytest.raises(ValueError, match="must"):
        MultiFactorScheduler(**args)


def test_state_round_trip_continues_exactly():
    a = MultiFactorScheduler(base_lr=0.1, steps=[2, 3], factor=0.1, iterations_per_epoch=7)
    for _ in range(13):
        a.update(0.5)
    b = MultiFactorScheduler(base_lr=0.1, steps=[2, 3], factor=0.1, iterations_per_epoch=7)
    b.load_state_dict(a.state_dict())
    assert b.step_counter == 13 and b.get_lr() == a.get_lr()
    assert [b.update() for _ in range(12)] == [a.update() for _ in range(12)]


def test_resume_from_step_counter_equals_straight_run():
    straight = MultiFactorScheduler(base_lr=0.2, steps=[1], factor=0.5, iterations_per_epoch=6)
    lrs = [straight.update() for _ in range(12)]
    resumed = MultiFactorScheduler(base_lr=0.2, steps=[1], factor=0.5, iterations_per_epoch=6, step_counter=6)
    assert [resumed.update() for _ in range(6)] == lrs[6:]


def test_loaded_schedule_overrides_arguments_with_warning(caplog):
    a = MultiFactorScheduler(base_lr=0.1, steps=[2], factor=0.1, iterations_per_epoch=7, step_counter=20)
    b = MultiFactorScheduler(base_lr=0.3, steps=[5], factor=0.1, iterations_per_epoch=7)
    with caplog.at_level(logging.WARNING, logger="train.lr_scheduler"):
        b.load_state_dict(a.state_dict())
    assert "base_lr: 0.3 -> 0.1" in caplog.text and "steps: [5] -> [2]" in caplog.text
    assert b.update() == pytest.approx(0.01)
