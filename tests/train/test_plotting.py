"""train.plots.curves (curves) and train.plots.confusion: what a reader of the figures sees, checked on the figures."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from marks import slow_except
from PIL import Image

from evaluation.multiview import plot_confusion as evaluation_plot_confusion
from train.plots.confusion import (
    FULL_MAX,
    block_max,
    confusion_figure,
    most_confused_classes,
    plot_confusion,
    top_confusions,
)
from train.plots.curves import RunInfo, curves_figure, plot_results, plot_title, read_results, wants_log_scale

HEADER = "Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds\n"
VERBS = ("Apply", "Balance", "Play", "Throw", "Jump", "Ride", "Swing", "Lift", "Brush", "Climb")
NOUNS = ("EyeMakeup", "Beam", "Guitar", "Discus", "Rope", "Bike", "Baseball", "Weights", "Teeth", "Rock")


def _run(folder: Path, rows: dict[str, list[tuple]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, values in rows.items():
        (folder / f"{split}_results_s0000.csv").write_text(
            HEADER + "".join(",".join(map(str, v)) + ",64,0,10\n" for v in values))
    return folder


def _names(k: int) -> list[str]:
    return [f"{VERBS[i % 10]}{NOUNS[(i // 10) % 10]}{'' if i < 100 else i}" for i in range(k)]


def _confusion(k: int, seed: int = 0) -> np.ndarray:
    """30 videos per class, 20-100 % correct, the errors mostly on the next two classes."""
    rng = np.random.default_rng(seed)
    c = np.zeros((k, k), dtype=np.int64)
    for t in range(k):
        acc = rng.uniform(0.2, 1.0)
        for _ in range(30):
            c[t, t if rng.random() < acc else (t + rng.integers(1, 3)) % k] += 1
    return c


# ---------------------------------------------------------------- curves

def test_one_epoch_run_has_one_integer_tick_and_a_full_title(tmp_path):
    folder = _run(tmp_path / "SYNTHETIC" / "srtg_r3d_18_gates_False",
                  {"train": [(1, 0.2, 0.8, 2.0, 0.02)], "val": [(1, 0.333333, 0.85, 1.9, 0.02)]})
    fig = curves_figure(read_results(folder, "train"), read_results(folder, "val"), RunInfo.from_folder(folder))
    for ax in fig.axes:
        assert list(ax.get_xticks()) == [1.0]
    assert fig._suptitle.get_text() == "srtg_r3d_18 (gates False) on SYNTHETIC: best val top-1 33.33% (epoch 1)"
    top1 = fig.axes[1]
    assert top1.lines[1].get_ydata()[0] == pytest.approx(33.3333)  # drawn in percent
    assert top1.get_yticklabels()[0].get_text().endswith("%")
    assert plot_results(folder).read_bytes()[:4] == b"\x89PNG"


def test_loss_axis_turns_log_on_a_spike_and_non_finite_values_are_reported(tmp_path):
    rows = [(e, 0.5, 0.9, 1.0 - e / 100, 0.1) for e in range(1, 13)]
    plain = _run(tmp_path / "plain", {"train": rows, "val": rows})
    spiky = _run(tmp_path / "spiky", {"train": rows, "val": rows[:4] + [(5, 0.1, 0.5, 2.16e8, 0.1),
                                                                     (6, 0.1, 0.5, "nan", 0.1)] + rows[6:]})
    figs = {name: curves_figure(read_results(f, "train"), read_results(f, "val"), RunInfo("net"))
            for name, f in (("plain", plain), ("spiky", spiky))}
    assert figs["plain"].axes[0].get_yscale() == "linear"
    loss = figs["spiky"].axes[0]
    assert loss.get_yscale() == "log" and "log" in loss.get_title()
    assert any("1 non-finite" in t.get_text() for t in loss.texts)
    ticks = figs["plain"].axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)


def test_a_later_run_from_the_same_start_overrides_an_older_branch(tmp_path):
    """An older branch's s0000 holds epochs 1-3; a resume from epoch 2 wrote s0002, was preempted inside epoch 3 and
    resumed into s0002_r2, whose epoch 3 is the run's: _r<n> files are read after the others of their start."""
    (tmp_path / "val_results_s0000.csv").write_text(HEADER + "1,0.1,0.2,3,0.1,64,0,10\n2,0.2,0.3,2,0.1,64,0,10\n"
                                                     "3,0.9,0.9,1,0.1,64,0,10\n")
    (tmp_path / "val_results_s0002.csv").write_text(HEADER)
    (tmp_path / "val_results_s0002_r2.csv").write_text(HEADER + "3,0.4,0.5,1.5,0.1,64,0,10\n")
    (tmp_path / "val_results_s0002_r10.csv").write_text(HEADER + "4,0.5,0.6,1.4,0.1,64,0,10\n")
    (tmp_path / "val_results_s0002_r9.csv").write_text(HEADER + "4,0.3,0.3,1.4,0.1,64,0,10\n")
    curve = read_results(tmp_path, "val")
    assert [curve[e]["Top1"] for e in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]


def test_wants_log_scale_and_run_info():
    assert wants_log_scale([6.0, 3.0, 1.0, 0.1])  # 60x range
    assert not wants_log_scale([2.0, 1.5, 1.0, 0.5])
    assert wants_log_scale([1.0, 1.1, 0.9, 15.0, 1.0])  # a spike 15x the median
    assert not wants_log_scale([1.0, float("inf")]) and not wants_log_scale([0.0, 5.0])
    info = RunInfo.from_mapping({"dataset": "UCF-101"}, RunInfo.from_folder("results/X/mtnet_xs_gates_True"))
    assert info == RunInfo("mtnet_xs", "UCF-101", True)
    assert RunInfo.from_folder("/tmp/anything") == RunInfo("anything")
    best_first = {1: {"Top1": 0.5}, 2: {"Top1": 0.5}, 3: {"Top1": math.nan}}
    assert plot_title(RunInfo("n"), best_first) == "n: best val top-1 50.00% (epoch 1)"


# ---------------------------------------------------------------- confusion

def test_top_confusions_and_most_confused_classes():
    c = np.array([[5, 3, 0, 0], [0, 8, 0, 1], [0, 0, 2, 2], [4, 0, 0, 4]])
    top = top_confusions(c, 3)
    # largest count first; (1 -> 3) with 1 video is left out
    assert [(x.true, x.pred, x.count) for x in top] == [(3, 0, 4), (0, 1, 3), (2, 3, 2)]
    assert top[0].rate == pytest.approx(0.5) and top[2].rate == pytest.approx(0.5)
    assert most_confused_classes(c, 3) == [3, 0, 1]
    assert most_confused_classes(np.eye(4, dtype=int), 3) == []


def test_block_max_keeps_an_isolated_confusion():
    m = np.zeros((401, 401))
    m[400, 3] = 0.25
    small, b = block_max(m, 200)
    assert b == 3 and small.shape == (134, 134) and small.max() == 0.25 and small[133, 1] == 0.25


def test_few_classes_show_the_full_named_matrix(tmp_path):
    names = _names(3)
    assert FULL_MAX >= 3
    fig = confusion_figure(_confusion(3), names, "t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert ax.get_yticklabels()[0].get_text().startswith(names[0]) and "%" in ax.get_yticklabels()[0].get_text()
    assert ax.images[0].get_array().max() <= 1.0  # normalised rows
    out = evaluation_plot_confusion(_confusion(3), names, tmp_path / "c3.png")
    assert max(Image.open(out).size) <= 2000


@pytest.mark.parametrize("k", slow_except([101, 400], {101}))
def test_many_classes_give_a_fixed_size_summary_with_names(tmp_path, k):
    names, confusion = _names(k), _confusion(k)
    out = plot_confusion(confusion, names, tmp_path / f"c{k}.png", title="x")
    assert Image.open(out).size == (2000, 1200)
    fig = confusion_figure(confusion, names)
    sub = fig.axes[0]
    shown = [t.get_text() for t in sub.get_xticklabels()]
    assert 2 <= len(shown) <= 24 and set(shown) <= set(names)
    worst = top_confusions(confusion, 1)[0]
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert f"{names[worst.true]} → {names[worst.pred]}: {100 * worst.rate:.0f}% ({worst.count})" in text


def test_bad_shapes_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="square matrix and 3 class names"):
        plot_confusion(np.zeros((3, 3)), ["a", "b"], tmp_path / "x.png")
