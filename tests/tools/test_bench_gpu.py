"""benchmarks/bench_gpu.py --smoke: the GPU benchmark's code end to end on CPU (tables, ratios, loader, busy)."""
from __future__ import annotations

import json

import pytest
import torch

from benchmarks import bench_gpu


@pytest.mark.slow
def test_smoke_run_writes_every_table(tmp_path):
    assert bench_gpu.main(["--smoke", "--out", str(tmp_path)]) == 0
    steps, loader, busy = json.loads((tmp_path / "bench_gpu-smoke.json").read_text())["tables"]
    # 2 models x fp32 (bf16 on CPU turns this tiny net NaN), + channels-last, + one compiled model
    assert [(r["model"], r["channels-last"], r["compile"]) for r in steps["rows"]] == [
        ("ir_csn_50", "", ""), ("srtg_ir_csn_50", "", ""), ("ir_csn_50", "yes", ""), ("srtg_ir_csn_50", "yes", ""),
        ("ir_csn_50", "", "yes")]
    assert all(r["clips/s"] > 0 for r in steps["rows"])  # measured, none skipped
    assert steps["rows"][0]["vs fp32"] == 1.0 and steps["rows"][0]["peak GB"] is None  # no CUDA memory on CPU
    assert [r["loader"] for r in loader["rows"]] == ["CPU decode, 0 workers", "deferred, decode on cpu"]
    assert 0.0 < busy["rows"][0]["busy fraction"] <= 1.0


def test_a_budget_spent_lists_the_rows_as_skipped():
    table = bench_gpu.step_rows(bench_gpu.SMOKE, torch.device("cpu"), deadline=0.0)
    assert len(table.rows) == 5 and all(r[5] == "skipped (time budget)" for r in table.rows)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_a_gpu_the_full_run_is_one_line(capsys):
    assert bench_gpu.main([]) == 1
    assert capsys.readouterr().err.strip().startswith("error: no CUDA device is visible")
