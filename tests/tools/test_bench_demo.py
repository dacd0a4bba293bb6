"""benchmarks/bench_demo.py --smoke: every lever row measured on a tiny network and data set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_demo


@pytest.mark.slow
def test_smoke_measures_every_lever(tmp_path: Path) -> None:
    assert bench_demo.main(["--smoke", "--threads", "1", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_demo-smoke.json").read_text())["tables"][0]["rows"]
    labels = [r["lever"] for r in rows]
    assert labels[0].endswith("(baseline)") and "step, --channels-last" in labels
    assert "step, SGD as torch's per-tensor loop" in labels
    assert any(label.startswith("synthetic set stored at 32²") for label in labels)
    assert labels[-2:] == ["one checkpoint write", "one validation pass"]
    ratios = [r["ratio"] for r in rows]
    assert ratios[0] == 1.0 and all(0 < v < 100 for v in ratios)
    assert (tmp_path / "bench_demo-smoke.md").read_text().count("\n| step, ") == len(labels) - 3
