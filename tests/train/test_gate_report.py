"""gates_s<start>.csv: written, read back across resumed runs, and drawn as gates.png."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from train.monitor.gate_report import GateCsv, gates_csv_path, plot_gates, read_gates

BLOCKS = ("layer1.0.sar", "layer2.0.sar", "layer10.0.sar")


def _write(folder: Path, start: int, epochs: range, rate: float) -> Path:
    path = gates_csv_path(folder, start)
    with GateCsv(path) as csv_file:
        for epoch in epochs:
            for phase in ("train", "val"):
                csv_file.write_rates(epoch, phase, {b: rate + 0.01 * epoch for b in BLOCKS} | {"empty": math.nan})
    return path


def test_rows_round_trip_and_a_resumed_run_overrides_its_epochs(tmp_path: Path) -> None:
    first = _write(tmp_path, 0, range(1, 4), 0.2)
    assert first.name == "gates_s0000.csv"
    assert first.read_text().splitlines()[:2] == ["Epoch,Phase,Block,PassRate", "1,train,layer1.0.sar,0.210000"]
    _write(tmp_path, 2, range(3, 5), 0.5)  # resumed after epoch 2: epoch 3 again, then 4
    history = read_gates(tmp_path)
    assert history["val"]["layer2.0.sar"] == pytest.approx({1: 0.21, 2: 0.22, 3: 0.53, 4: 0.54})
    assert "empty" not in history["train"]  # no sample checked: no point
    assert read_gates(first)["train"]["layer1.0.sar"] == pytest.approx({1: 0.21, 2: 0.22, 3: 0.23})


def test_bad_rows_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "gates_s0000.csv"
    path.write_text("Epoch,Phase,Block,PassRate\n1,train,layer1.0.sar,0.5\n2,train,layer1.0.sar,half\n")
    with pytest.raises(ValueError, match=r"gates_s0000.csv:3: .*not a number"):
        read_gates(path)
    path.write_text("Epoch,Top1\n1,0.5\n")
    with pytest.raises(ValueError, match="is not Epoch,Phase,Block,PassRate"):
        read_gates(tmp_path)
    with pytest.raises(ValueError, match="phase must be"):
        GateCsv(tmp_path / "x.csv").write_rates(1, "test", {"a": 0.5})


def test_plot_draws_both_phases(tmp_path: Path) -> None:
    _write(tmp_path, 0, range(1, 6), 0.1)
    out = plot_gates(tmp_path)
    assert out == tmp_path / "gates.png"
    image = imread(out)
    assert image.shape[0] > 300 and image.shape[1] > 800
    left, right = image[:, : image.shape[1] // 2, :3], image[:, image.shape[1] // 2:, :3]
    assert all(np.abs(half - half.mean((0, 1))).sum(-1).max() > 0.5 for half in (left, right))  # coloured lines
    with pytest.raises(FileNotFoundError, match="no pass rates"):
        plot_gates(tmp_path / "missing")


def test_a_second_run_from_the_same_start_keeps_the_first_gates_csv(tmp_path: Path) -> None:
    """Like the result CSVs, gates_s<start>.csv is never overwritten: a second run from the same start writes
    gates_s<start>_r2.csv, read after it; a resume from an earlier epoch moves the later files aside."""
    import torch.nn as nn

    from train.monitor.gate_monitor import GateMonitor
    from train.results.retention import files_beyond

    first = _write(tmp_path, 2, range(3, 5), 0.2)
    before = first.read_text()
    monitor = GateMonitor(nn.Identity(), tmp_path, 2, 0)
    monitor.csv.write_rates(3, "val", dict.fromkeys(BLOCKS, 0.9))
    monitor.close()
    assert first.read_text() == before and monitor.csv.path.name == "gates_s0002_r2.csv"
    history = read_gates(tmp_path)["val"]["layer1.0.sar"]
    assert history == pytest.approx({3: 0.9, 4: 0.24})
    assert files_beyond(tmp_path, "net", 1, 0) == ["gates_s0002.csv", "gates_s0002_r2.csv"]
