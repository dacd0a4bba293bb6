"""train/callback.py: the original's exact log-line format, number formatting and colour thresholds."""
from __future__ import annotations

import logging

import pytest

from train.callback import (GREEN, RED, RESET, YELLOW, CallbackList, MetricPrinter, SpeedMonitor, colour,
                            default_callbacks, progress_bar, sci)


def test_decimal_scientific_format():
    assert sci(153000) == "1.53e+5"
    assert sci(98.4) == "9.84e+1"
    assert sci(0.1) == "1.00e-1"
    assert sci(17.8) == "1.78e+1"


@pytest.mark.parametrize("kind,value,code", [
    ("r", 99.9, RED), ("r", 100, YELLOW), ("r", 2999, YELLOW), ("r", 3000, GREEN),
    ("f", 49, RED), ("f", 50, YELLOW), ("f", 299, YELLOW), ("f", 300, GREEN),
    ("b", 19, RED), ("b", 20, YELLOW), ("b", 199, YELLOW), ("b", 200, GREEN)])
def test_colour_thresholds(kind, value, code):
    assert colour(kind, value) == f"{code}{sci(value)}{RESET}"


def test_train_line_matches_the_original():
    # measured from the original (spec §3.2): ⟨92⟩ green read, ⟨93⟩ yellow forward, ⟨91⟩ red backward
    line = default_callbacks()(epoch=0, batch=12, silent=True, read_elapse=1 / 153000, forward_elapse=1 / 98.4,
                               backward_elapse=1 / 17.8,
                               namevals=[("loss-ce", 5.3), ("top1", 0.25), ("top5", 0.5),
                                         ("batch_size", (384, 3, 4, 200, 200)), ("lr", 0.1)])
    expected = ("Epoch [0]   Batch [12]   Speed (r=\033[92m1.53e+5\033[0m f=\033[93m9.84e+1\033[0m "
                "b=\033[91m1.78e+1\033[0m) clip/sec  loss-ce = 5.30000, top1 = 0.25000, top5 = 0.50000, "
                "batch_size = (  384,3, 4,200,200), lr = 1.00e-1  ")
    assert line == expected


def test_validation_line_skips_none_values():
    line = default_callbacks()(epoch=3, batch=120, silent=True, read_elapse=1 / 500, forward_elapse=1 / 60,
                               namevals=[("loss-ce", 5.3), ("top1", 0.25), ("top5", 0.5), ("batch_size", None),
                                         ("lr", None)])
    assert line.startswith("Epoch [3]   Batch [120]  Speed (r=")
    assert " b=" not in line
    assert line.endswith("clip/sec  loss-ce = 5.30000, top1 = 0.25000, top5 = 0.50000,  ")


def test_parts_without_header():
    assert SpeedMonitor()(read_elapse=None, forward_elapse=None) == ""
    assert MetricPrinter()(namevals=[("top1", 1.0)]) == "top1 = 1.00000 "
    assert MetricPrinter(with_header=True)(namevals=None, epoch=1) == "Epoch [1]   "


def test_callback_list_logs_at_info(caplog):
    with caplog.at_level(logging.INFO, logger="train.callback"):
        CallbackList(MetricPrinter())(epoch=0, batch=1, namevals=[("top1", 0.5)])
    assert caplog.records[-1].getMessage() == "Epoch [0]   Batch [1]    top1 = 0.50000  "


def test_progress_bar_disabled_off_terminal():
    with progress_bar(3, "x", enabled=False) as bar:
        bar.update(3)
    assert bar.disable
