"""tools/plot_results.py over train.plotting: curves from hand-written result CSVs, resumed runs, missing val."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.plot_results import main
from train.plotting import plot_results, read_results

HEADER = "Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds\n"
PNG = b"\x89PNG\r\n\x1a\n"


def _write(path: Path, rows: list[str]) -> None:
    path.write_text(HEADER + "".join(r + "\n" for r in rows))


def test_resumed_run_overrides_repeated_epochs(tmp_path):
    _write(tmp_path / "train_results_s0000.csv", ["1,0.1,0.4,2.0,0.1,64,0,10", "2,0.2,0.5,1.8,0.1,64,0,10",
                                                 "3,0.3,0.6,1.6,0.1,64,0,10"])
    # resumed after epoch 2: epoch 3 was trained again and wins
    _write(tmp_path / "train_results_s0002.csv", ["3,0.35,0.65,1.5,0.01,64,1,10", "4,0.4,0.7,1.4,0.01,64,0,10"])
    _write(tmp_path / "val_results_s0000.csv", ["2,0.15,0.45,1.9,0.1,16,0,2"])
    train, val = read_results(tmp_path, "train"), read_results(tmp_path, "val")
    assert sorted(train) == [1, 2, 3, 4] and train[3]["Top1"] == 0.35 and train[3]["LR"] == 0.01
    assert list(val) == [2]
    out = plot_results(tmp_path)
    assert out == tmp_path / "curves.png" and out.read_bytes()[:8] == PNG


def test_cli_without_val_files_and_with_a_half_written_row(tmp_path, capsys):
    (tmp_path / "train_results_s0000.csv").write_text(HEADER + "1,0.1,0.4,2.0,0.1,64,0,10\n,,,\n")
    out = tmp_path / "figs" / "c.png"
    assert main([str(tmp_path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.read_bytes()[:8] == PNG


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "no rows in train_results_s*.csv" in capsys.readouterr().err
    _write(tmp_path / "train_results_s0000.csv", ["1,0.1,0.4,oops,0.1,64,0,10"])
    with pytest.raises(ValueError, match=r"train_results_s0000\.csv:2: not a number"):
        read_results(tmp_path, "train")
