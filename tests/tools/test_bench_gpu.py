"""benchmarks/bench_gpu.py: rows past the time budget, and the refusal without a GPU. Its ``--smoke`` run (every
table end to end on the CPU) is checked by tests/tools/test_bench_gpu_check.py, inside the GPU check's dry run."""
from __future__ import annotations

import pytest
import torch

from benchmarks import bench_gpu


def test_a_budget_spent_lists_the_rows_as_skipped():
    table = bench_gpu.step_rows(bench_gpu.SMOKE, torch.device("cpu"), deadline=0.0)
    assert len(table.rows) == 5 and all(r[5] == "skipped (time budget)" for r in table.rows)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_a_gpu_the_full_run_is_one_line(capsys):
    assert bench_gpu.main([]) == 1
    assert capsys.readouterr().err.strip().startswith("error: no CUDA device is visible")


def test_a_compile_row_starts_only_with_its_compile_time_left(monkeypatch):
    import dataclasses
    import time

    monkeypatch.setattr(bench_gpu, "step_rate", lambda *a, **k: (10.0, None))  # no model runs: the schedule only
    plan = dataclasses.replace(bench_gpu.SMOKE, compile_s=100.0)
    table = bench_gpu.step_rows(plan, torch.device("cpu"), deadline=time.perf_counter() + 50.0)
    assert [r[5] for r in table.rows] == [10.0] * 4 + ["skipped (time budget)"]  # the compiled row is the last
