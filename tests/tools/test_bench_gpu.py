"""benchmarks/bench_gpu.py --smoke: the GPU benchmark's code end to end on CPU (tables, ratios, loader, busy)."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_gpu  # noqa: E402


def test_smoke_run_writes_every_table(tmp_path, capsys):
    out = tmp_path / "gpu.md"
    assert bench_gpu.main(["--smoke", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ir_csn_50") or ln.startswith("| srtg_ir_csn_50")]
    assert len(rows) == 6  # 2 models x fp32 (bf16 on CPU turns this tiny net NaN), + channels-last, + compile
    assert all(float(r.split("|")[6]) > 0 for r in rows)  # clips/s measured, none skipped
    assert "| CPU decode, 0 workers |" in text and "| deferred, decode on cpu |" in text
    busy = float(text.split("0 workers: ")[-1].split()[0])
    assert 0.0 < busy <= 1.0


def test_without_a_gpu_the_full_run_is_one_line(capsys):
    if torch.cuda.is_available():
        return
    assert bench_gpu.main([]) == 1
    assert capsys.readouterr().err.strip().startswith("error: no CUDA device is visible")
