"""tools/plot_results.py over train.plots.curves: curves from hand-written result CSVs, resumed runs, missing val."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.plot_results import main
from train.plots.curves import plot_results, read_results

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


@pytest.mark.slow
def test_draw_figures_writes_the_sketches_and_the_demo_plots(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from tools.draw_figures import main as draw_main

    run = tmp_path / "SYNTHETIC" / "srtg_r3d_18_gates_False"
    run.mkdir(parents=True)
    _write(run / "train_results_s0000.csv", ["1,0.1,0.4,2.0,0.1,64,0,10", "2,0.5,0.9,1.0,0.1,64,0,10"])
    _write(run / "val_results_s0000.csv", ["1,0.2,0.5,1.9,0.1,16,0,2", "2,0.6,0.95,0.9,0.1,16,0,2"])
    evaluation = run / "eval"
    evaluation.mkdir()
    names = ["move_left", "move_right", "rotate_cw"]
    (evaluation / "results.json").write_text(json.dumps({"network": "srtg_r3d_18", "dataset": "SYNTHETIC",
                                                         "video_top1": 0.5, "classes": names,
                                                         "confusion": np.eye(3, dtype=int).tolist()}))
    out = tmp_path / "figs"
    assert draw_main(["--out", str(out), "--demo", str(run), "--eval", str(evaluation)]) == 0
    written = capsys.readouterr().out.split()
    assert [Path(p).name for p in written] == ["sr_block.png", "mtconv.png", "demo_curves.png", "demo_confusion.png"]
    for path in written:
        width, height = Image.open(path).size
        assert 400 <= width <= 2000 and 300 <= height <= 2000
    assert draw_main(["--out", str(out), "--eval", str(tmp_path)]) == 1
    assert "results.json: not found" in capsys.readouterr().err
