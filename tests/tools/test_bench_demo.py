"""benchmarks/bench_demo.py --smoke: every lever row measured on a tiny network and data set."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_demo  # noqa: E402


def test_smoke_measures_every_lever(tmp_path: Path) -> None:
    out = tmp_path / "levers.md"
    assert bench_demo.main(["--smoke", "--threads", "1", "--out", str(out)]) == 0
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines()[2:]]
    labels = [r[0].strip() for r in rows]
    assert labels[0].endswith("(baseline)") and "step, --channels-last" in labels
    assert "step, SGD as a per-tensor loop (before: not fused)" in labels
    assert any(label.startswith("synthetic set stored at 32²") for label in labels)
    assert labels[-2:] == ["one checkpoint write", "one validation pass"]
    ratios = [float(r[2]) for r in rows]
    assert ratios[0] == 1.0 and all(0 < v < 100 for v in ratios)
