"""benchmarks/bench_trimmed_conv.py: a tiny run prints one row per network and clip, and restores the limit."""
from __future__ import annotations

import network.conv as conv
from benchmarks import bench_trimmed_conv


def test_tiny_run_prints_a_row_per_network_and_clip(capsys, tmp_path):
    limit = conv.WGRAD_MAX_POSITIONS
    assert bench_trimmed_conv.main(["--smoke", "--out", str(tmp_path)]) == 0  # r3d_18 on 2 clips of 4x16²
    assert conv.WGRAD_MAX_POSITIONS == limit
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| r3d_18")]
    assert len(rows) == 1
    plain, aten, trim = (float(rows[0][i]) for i in (3, 4, 5))
    assert min(plain, aten, trim) > 0
    for column, ratio in ((6, plain / trim), (7, aten / trim)):  # ratios of the unrounded seconds
        assert abs(float(rows[0][column].strip().rstrip("x")) - ratio) < 0.05 * ratio
