"""benchmarks/bench_trimmed_conv.py: a tiny run prints one row per network and clip, and restores the limit."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_trimmed_conv  # noqa: E402

import network.conv as conv  # noqa: E402


def test_tiny_run_prints_a_row_per_network_and_clip(capsys):
    limit = conv.WGRAD_MAX_POSITIONS
    assert bench_trimmed_conv.main(["--network", "r3d_18", "--repeats", "1", "--warmup", "0",
                                    "--shapes", "2,4,16"]) == 0
    assert conv.WGRAD_MAX_POSITIONS == limit
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| r3d_18")]
    assert len(rows) == 1
    plain, aten, trim = (float(rows[0][i]) for i in (3, 4, 5))
    assert min(plain, aten, trim) > 0
    for column, ratio in ((6, plain / trim), (7, aten / trim)):  # ratios of the unrounded seconds
        assert abs(float(rows[0][column].strip().rstrip("x")) - ratio) < 0.05 * ratio
