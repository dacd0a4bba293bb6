"""benchmarks/gpu_check.sh: its CPU dry run goes through every step (the bench_gpu tables included), and a step
that fails is named in the summary and gives a non-zero exit status while the later steps still run."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ["versions", "cuda-tests", "data", "videos", "train-fp16", "train-decode-gpu", "evaluate", "predict",
         "export-ts", "export-onnx", "bench-gpu"]


def _check(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OUT": str(out), "WORK": str(tmp_path / "work"), **env})
    rows = [line.split("|") for line in (out / "summary.md").read_text().splitlines() if line.startswith("| ")]
    return proc, {r[1].strip(): r[2].strip() for r in rows[1:]}


@pytest.mark.slow
def test_the_dry_run_passes_every_step(tmp_path: Path) -> None:
    proc, results = _check(tmp_path)
    out = tmp_path / "out"
    assert proc.returncode == 0, (out / "check.log").read_text()[-4000:]
    assert results == dict.fromkeys(STEPS, "ok") and "every step passed" in proc.stdout
    log = (out / "check.log").read_text()
    assert "device: cpu (dry run)" in log and "torch " in log
    assert "skipped" in log and "needs a CUDA device" in log  # the CUDA tests, with the reason
    assert log.count("Training finished") == 2 and "video-level  top-1" in log
    for run in ("fp16", "decode-gpu"):
        assert "# train_results_s0000.csv" in (out / f"results-{run}.txt").read_text()
    assert (tmp_path / "work" / "model.pt").is_file() and (tmp_path / "work" / "model.onnx").is_file()
    steps, loader, busy = json.loads((out / "bench_gpu-smoke.json").read_text())["tables"]
    # 2 models x fp32 (bf16 on CPU turns this tiny net NaN), + channels-last, + one compiled model
    assert [(r["model"], r["channels-last"], r["compile"]) for r in steps["rows"]] == [
        ("ir_csn_50", "", ""), ("srtg_ir_csn_50", "", ""), ("ir_csn_50", "yes", ""), ("srtg_ir_csn_50", "yes", ""),
        ("ir_csn_50", "", "yes")]
    assert all(r["clips/s"] > 0 for r in steps["rows"]) and steps["rows"][0]["vs fp32"] == 1.0
    assert [r["loader"] for r in loader["rows"]] == ["CPU decode, 0 workers", "deferred, decode on cpu"]
    assert 0.0 < busy["rows"][0]["busy fraction"] <= 1.0
    assert len(list(out.iterdir())) <= 8  # what comes back from a GPU machine's $OUT


def test_a_failing_step_is_named_and_the_later_steps_still_run(tmp_path: Path) -> None:
    proc, results = _check(tmp_path, PYTHON="false")  # every python step exits 1 at once
    assert proc.returncode == 1
    assert results["versions"] == results["train-fp16"] == results["bench-gpu"] == "FAILED (exit 1)"
    assert results["evaluate, predict, export"] == "skipped (no checkpoint)"
    assert "failed: versions cuda-tests data videos train-fp16 train-decode-gpu no checkpoint bench-gpu" in proc.stdout
