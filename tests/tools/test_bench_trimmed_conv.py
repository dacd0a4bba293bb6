"""benchmarks/bench_trimmed_conv.py: a tiny run gives one row per network and clip, and restores the limit."""
from __future__ import annotations

import json

import pytest

import network.conv as conv
from benchmarks import bench_trimmed_conv


def test_tiny_run_gives_a_row_per_network_and_clip(capsys, tmp_path):
    limit = conv.WGRAD_MAX_POSITIONS
    assert bench_trimmed_conv.main(["--smoke", "--out", str(tmp_path)]) == 0  # r3d_18 on 2 clips of 4x16²
    assert conv.WGRAD_MAX_POSITIONS == limit
    (row,) = json.loads((tmp_path / "bench_trimmed_conv-smoke.json").read_text())["tables"][0]["rows"]
    assert (row["network"], row["clip (B, T, S)"]) == ("r3d_18", "(2, 4, 16)")
    plain, aten, trim = row["nn.Conv3d s"], row["TrimmedConv3d, ATen weight grad s"], row["TrimmedConv3d s"]
    assert min(plain, aten, trim) > 0
    assert row["speed-up over nn.Conv3d"] == pytest.approx(plain / trim)  # ratios of the same run's medians
    assert row["over ATen weight grad"] == pytest.approx(aten / trim)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| r3d_18")]
    assert printed == [f"| r3d_18 | (2, 4, 16) | {plain:.3f} | {aten:.3f} | {trim:.3f} | {plain / trim:.2f}x | "
                       f"{aten / trim:.2f}x |"]
