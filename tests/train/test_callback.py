"""train/monitor/callback.py: the original's exact log lines (spec §3.2) and colour bands, as logged by
train/monitor/progress.py, and when the progress bar draws."""
from __future__ import annotations

import io
import logging
import sys

import pytest
import torch

from train.monitor.callback import (
    CallbackList,
    MetricPrinter,
    SpeedMonitor,
    colour,
    default_callbacks,
    sci,
    speed_legend,
)
from train.monitor.metric import RunningMetrics
from train.monitor.progress import Monitor, StepClock

# ANSI codes written out (not imported) so a changed constant fails here.
R, Y, G, X = "\033[91m", "\033[93m", "\033[92m", "\033[0m"


@pytest.mark.parametrize("value, text", [(153000, "1.53e+5"), (98.4, "9.84e+1"), (0.1, "1.00e-1"),
                                         (17.8, "1.78e+1"), (1e12, "1.00e+12"), (5, "5.00e+0"),
                                         (0.000123, "1.23e-4")])
def test_decimal_scientific_format_has_no_zero_padded_exponent(value: float, text: str) -> None:
    assert sci(value) == text


@pytest.mark.parametrize("kind, value, expected", [
    ("r", 99.9, f"{R}9.99e+1{X}"), ("r", 100, f"{Y}1.00e+2{X}"), ("r", 2999, f"{Y}3.00e+3{X}"),
    ("r", 3000, f"{G}3.00e+3{X}"), ("f", 49, f"{R}4.90e+1{X}"), ("f", 50, f"{Y}5.00e+1{X}"),
    ("f", 299, f"{Y}2.99e+2{X}"), ("f", 300, f"{G}3.00e+2{X}"), ("b", 19, f"{R}1.90e+1{X}"),
    ("b", 20, f"{Y}2.00e+1{X}"), ("b", 199, f"{Y}1.99e+2{X}"), ("b", 200, f"{G}2.00e+2{X}")])
def test_colour_bands_at_the_original_thresholds(kind: str, value: float, expected: str) -> None:
    assert colour(kind, value) == expected


def test_speed_monitor_turns_seconds_per_clip_into_coloured_clips_per_second() -> None:
    assert SpeedMonitor()(read_elapse=1 / 4000, forward_elapse=1 / 120, backward_elapse=1 / 10) == (
        f"Speed (r={G}4.00e+3{X} f={Y}1.20e+2{X} b={R}1.00e+1{X}) clip/sec ")
    assert SpeedMonitor()(read_elapse=0.5, forward_elapse=0.01) == f"Speed (r={R}2.00e+0{X} f={Y}1.00e+2{X}) clip/sec "
    # a zero interval (an empty read) must not divide by zero
    assert SpeedMonitor()(read_elapse=0.0, forward_elapse=1.0).startswith(f"Speed (r={G}1.00e+12{X} f={R}")
    assert SpeedMonitor()(read_elapse=None, forward_elapse=0.1) == ""


def test_train_line_matches_the_original() -> None:
    # measured from the original (spec §3.2): ⟨92⟩ green read, ⟨93⟩ yellow forward, ⟨91⟩ red backward
    line = default_callbacks()(epoch=0, batch=12, silent=True, read_elapse=1 / 153000, forward_elapse=1 / 98.4,
                               backward_elapse=1 / 17.8,
                               namevals=[("loss-ce", 5.3), ("top1", 0.25), ("top5", 0.5),
                                         ("batch_size", (384, 3, 4, 200, 200)), ("lr", 0.1)])
    assert line == (f"Epoch [0]   Batch [12]   Speed (r={G}1.53e+5{X} f={Y}9.84e+1{X} b={R}1.78e+1{X}) clip/sec  "
                    "loss-ce = 5.30000, top1 = 0.25000, top5 = 0.50000, batch_size = (  384,3, 4,200,200), "
                    "lr = 1.00e-1  ")


def test_validation_line_keeps_the_originals_trailing_comma() -> None:
    line = default_callbacks()(epoch=3, batch=120, silent=True, read_elapse=1 / 500, forward_elapse=1 / 60,
                               namevals=[("loss-ce", 5.3), ("top1", 0.25), ("top5", 0.5), ("batch_size", None),
                                         ("lr", None)])
    assert line == (f"Epoch [3]   Batch [120]  Speed (r={Y}5.00e+2{X} f={Y}6.00e+1{X}) clip/sec  "
                    "loss-ce = 5.30000, top1 = 0.25000, top5 = 0.50000,  ")


METRICS_TEXT = ("loss-ce = 1.25000, top1 = 0.50000, top5 = 1.00000, batch_size = (    4,3, 8,112,112), "
                "lr = 1.25e-2  ")


@pytest.mark.parametrize("phase, prefix", [("train", ""), ("val", "(val) ")])
def test_the_loops_monitor_logs_the_line_every_log_interval(caplog: pytest.LogCaptureFixture, phase: str,
                                                            prefix: str) -> None:
    """What train/monitor/progress.py logs during an epoch: the interval's speeds per clip (from the step clock)
    and its metrics (from the device sums), read at the log interval."""
    monitor, meter, clock = Monitor(log_interval=2, interactive=False), RunningMetrics("cpu"), StepClock("cpu")
    preds = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    with caplog.at_level(logging.INFO), monitor.epoch(0, 3, phase, meter, clock) as progress:
        for _ in range(3):
            meter.score(preds, torch.tensor([1, 2, 2, 1]), torch.tensor(1.25))
            clock.add(0.0, 4 / 400, 4 / 400 + 4 / 250 if phase == "train" else None)
            progress.advance(4 / 200, 4, lr=0.0125, shape=(4, 3, 8, 112, 112))
    lines = [r.getMessage() for r in caplog.records if r.name == "train.monitor.callback"]
    speeds = f"r={Y}2.00e+2{X} f={G}4.00e+2{X}" + (f" b={G}2.50e+2{X}" if phase == "train" else "")
    assert lines == [f"{prefix}Epoch [1]   Batch [2]    Speed ({speeds}) clip/sec  " + METRICS_TEXT]


def test_cpu_runs_get_their_own_colour_bands() -> None:
    cpu, cuda = SpeedMonitor(device_type="cpu"), SpeedMonitor(device_type="cuda")
    elapses = {"read_elapse": 1 / 50, "forward_elapse": 1 / 40, "backward_elapse": 1 / 0.5}
    assert cpu(**elapses) == f"Speed (r={Y}5.00e+1{X} f={G}4.00e+1{X} b={R}5.00e-1{X}) clip/sec "
    assert cuda(**elapses) == f"Speed (r={R}5.00e+1{X} f={R}4.00e+1{X} b={R}5.00e-1{X}) clip/sec "
    assert SpeedMonitor(device_type="mps")(**elapses) == cuda(**elapses)  # unknown devices: the original's bands
    assert default_callbacks("cpu")(silent=True, **elapses).startswith(f"Speed (r={Y}")


def test_speed_legend_states_the_bands_in_use() -> None:
    assert speed_legend("cuda") == ("speed lines: r/f/b = clips per second of reading (waiting for the loader), "
                                    "forward and backward; red < 100/50/20 <= yellow < 3000/300/200 <= green on CUDA")
    assert speed_legend("cpu").endswith("red < 10/2/1 <= yellow < 300/30/20 <= green on CPU")


def test_headers_pad_to_the_originals_widths() -> None:
    assert MetricPrinter(with_header=True)(namevals=None, epoch=1) == "Epoch [1]   "
    assert MetricPrinter(with_header=True)(namevals=None, epoch=100, batch=123456) == "Epoch [100] Batch [123456] "
    assert MetricPrinter()(namevals=[("top1", 1.0)], epoch=5, batch=5) == "top1 = 1.00000 "  # no header by default


def test_callback_list_logs_the_returned_line_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="train.monitor.callback"):
        line = CallbackList(MetricPrinter())(epoch=0, batch=1, namevals=[("top1", 0.5)])
        CallbackList(MetricPrinter())(epoch=0, batch=2, silent=True, namevals=[("top1", 0.5)])
    records = [r for r in caplog.records if r.name == "train.monitor.callback"]
    assert [r.getMessage() for r in records] == [line] and line == "Epoch [0]   Batch [1]    top1 = 0.50000  "
    assert records[0].levelno == logging.INFO


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, drawn", [(_Terminal(), True), (io.StringIO(), False)])
def test_progress_bar_draws_only_on_a_terminal_and_keeps_log_lines_whole(monkeypatch: pytest.MonkeyPatch,
                                                                          stream: io.StringIO, drawn: bool) -> None:
    """``interactive=None`` (the default) decides from stderr; log lines go above a drawn bar, never into it."""
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()  # the handlers logging_redirect_tqdm reroutes are the root logger's
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    monkeypatch.setattr(root, "level", logging.INFO)
    try:
        with Monitor(log_interval=100).epoch(6, total=3, phase="train") as progress:
            disabled = progress.bar.disable
            progress.advance(0.01, clips=2)
            progress.advance(0.01, clips=2)
            logging.getLogger("test_callback.bar").info("a log line")
            progress.advance(0.01, clips=2)
            count = progress.bar.n
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert disabled is not drawn and count == (3 if drawn else 0)
    assert ("Epoch 7 train" in text and "/3 [" in text) is drawn
    assert text.count("a log line") == 1 and "\na log line\n" in "\n" + text.replace("\r", "\n")
    # off a terminal, progress lines replace the bar
    assert ("Epoch 7 train: iteration 1/3" in text) is not drawn
