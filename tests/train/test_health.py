"""train/monitor/health.py: the warnings for exploding losses, oversized batches and tiny validation sets."""
from __future__ import annotations

import logging
import math

from train.monitor.health import LossWatch, check_data


def test_exploding_validation_loss_is_a_warning(caplog):
    watch = LossWatch(num_classes=4)
    with caplog.at_level(logging.WARNING, logger="train.monitor.health"):
        assert watch.observe("val", 1, 1.3) is None
        assert watch.observe("val", 2, 1.1) is None
        text = watch.observe("val", 3, 2.16e8)
    assert text and "Epoch [3] (val): the loss is 2.16e+08, 8.3 orders of magnitude above 1.1" in text
    assert caplog.records[-1].levelname == "WARNING"


def test_a_first_loss_far_above_chance_is_caught():
    assert "orders of magnitude above 1.39" in LossWatch(num_classes=4).observe("train", 1, 5e3)


def test_non_finite_loss_is_a_warning():
    assert "the loss is nan" in LossWatch(num_classes=10).observe("train", 1, math.nan)


def test_normal_noise_is_quiet():
    watch = LossWatch(num_classes=400)
    assert all(watch.observe("train", e, v) is None for e, v in enumerate([6.0, 5.2, 5.9, 4.1, 8.0], start=1))


def test_batch_larger_than_data_and_tiny_val_set(caplog):
    with caplog.at_level(logging.WARNING, logger="train.monitor.health"):
        problems = check_data(train_clips=6, val_clips=3, batch_size=32, num_classes=8)
    assert len(problems) == 2 and "--batch-size 32 is larger than the 6 training clips" in problems[0]
    assert "3 clips for 8 classes" in problems[1]
    assert check_data(train_clips=600, val_clips=80, batch_size=32, num_classes=8) == []
