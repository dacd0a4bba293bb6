"""benchmarks/bench_sources.py --smoke: both sources read the same prepared videos, and the report files hold the
speed and disk tables."""
from __future__ import annotations

import json

from benchmarks import bench_sources


def test_smoke_run_writes_both_tables(tmp_path):
    assert bench_sources.main(["--smoke", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench_sources-smoke.json").read_text())
    assert data["smoke"] and (tmp_path / "bench_sources-smoke.md").is_file()
    speed, disk = (t["rows"] for t in data["tables"])
    assert {(r["source"], r["work"]) for r in speed} == {(s, w) for s in ("store", "video") for w in ("decode", "clip")}
    assert all(r["clips / CPU-s"] > 0 for r in speed)
    video_cpu = {r["work"]: r["CPU x store"] for r in speed if r["source"] == "video"}
    assert all(v > 0 for v in video_cpu.values())
    mp4, store = disk
    # JPEG per frame against H.264 between frames: the store is several times the mp4
    assert mp4["bytes"] > 0 and store["bytes"] > 2 * mp4["bytes"] and store["x mp4"] == store["bytes"] / mp4["bytes"]
