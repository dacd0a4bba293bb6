"""benchmarks/bench_stem.py: its multiply-add counter against the model table, and a tiny end-to-end run."""
from __future__ import annotations

import torch

from benchmarks import bench_stem
from network import create_model


def test_macs_match_the_model_table():
    clip = torch.zeros(1, 3, 16, 112, 112)
    stem, total = bench_stem.count_macs(create_model("r3d_18", num_classes=400).eval(), clip)
    assert stem == 64 * 16 * 56 * 56 * 3 * 3 * 7 * 7  # (3, 7, 7) kernel, stride (1, 2, 2), 3 input channels
    assert round(2 * total / 1e9, 2) == 12.84  # docs/model_zoo.md's GFLOPs for r3d_18 (ptflops)


def test_tiny_run_prints_both_tables(capsys, tmp_path):
    assert bench_stem.main(["--batch", "2", "--frames", "4", "--size", "40", "--repeats", "1", "--warmup", "0",
                            "--num-classes", "5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "bench_stem.json").is_file()
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("| ")}
    for name in ("r3d_18", "mtnet_xs"):
        step_s, stem_s, time_share, flop_share = (float(rows[name][i]) for i in (2, 3, 4, 6))
        assert step_s > 0 and stem_s >= 0  # timings themselves depend on the machine's load
        assert abs(time_share - stem_s / step_s) <= 0.005 + 0.001 / step_s  # the share is of the printed times
        assert 0.0 < flop_share < 1.0  # the stem does part of the multiply-adds (no timing involved)
    assert "in proportion to their MACs" in out
    assert {"64", "56", "16", "8"} <= set(rows)
