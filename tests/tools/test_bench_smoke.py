"""Benchmarks as a set: each has ``main(argv)``, ``--smoke`` and ``--out``, is listed in benchmarks/README.md, and
the ones without a test file of their own run their smoke settings here and write a report with real figures."""
from __future__ import annotations

import importlib
import inspect
import json
import math
from pathlib import Path

import pytest

import benchmarks

BENCH_DIR = Path(benchmarks.__file__).parent
NAMES = sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", NAMES)
def test_every_benchmark_takes_argv_smoke_and_out(name: str, capsys: pytest.CaptureFixture) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert list(inspect.signature(module.main).parameters) == ["argv"]
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--smoke" in text and "--out" in text


def test_the_readme_gives_every_benchmark_its_command() -> None:
    readme = (BENCH_DIR / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines() if line.startswith("| `")}
    assert rows == {f"{name}.py" for name in NAMES}
    for name in NAMES:
        assert f"python -m benchmarks.{name}" in readme


def _report(out: Path, name: str) -> dict:
    data = json.loads((out / f"{name}-smoke.json").read_text())
    assert data["smoke"] and data["command"].startswith(f"python -m benchmarks.{name} --smoke")
    assert data["environment"]["torch"] and data["environment"]["cpu"]
    assert (out / f"{name}-smoke.md").read_text().startswith(f"## {name} (smoke run)")
    return data


def _positive(values) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in values)


@pytest.mark.slow
def test_bench_models_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_models

    assert bench_models.main(["--smoke", "--out", str(tmp_path)]) == 0
    rows = _report(tmp_path, "bench_models")["tables"][0]["rows"]
    assert [r["model"] for r in rows] == ["r3d_18", "srtg_r3d_18 gates on", "mtnet_xs"]  # --only adds the baseline
    assert _positive(r["wall median s"] for r in rows) and rows[0]["wall ratio"] == 1.0
    assert rows[1]["wall ratio"] == pytest.approx(rows[1]["wall median s"] / rows[0]["wall median s"])


def test_bench_transforms_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_transforms

    assert bench_transforms.main(["--smoke", "--out", str(tmp_path)]) == 0
    rows = _report(tmp_path, "bench_transforms")["tables"][0]["rows"]
    assert len(rows) == 3 and all(r["S"] == 32 for r in rows)
    assert _positive(r[k] for r in rows for k in ("vectorised", "per-frame loop", "speed-up"))


def test_bench_reads_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_reads

    assert bench_reads.main(["--smoke", "--out", str(tmp_path)]) == 0
    rows = _report(tmp_path, "bench_reads")["tables"][0]["rows"]
    assert [r["method"] for r in rows] == [bench_reads.OLD, "new, original", "new, ours", "new, reordered+index"]
    assert rows[0]["cold 40 ratio"] == rows[0]["warm 40 ratio"] == 1.0
    assert _positive(r["warm 40 ms"] for r in rows)


def test_bench_loader_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_loader

    assert bench_loader.main(["--smoke", "--out", str(tmp_path)]) == 0
    wall, cpu, decoders = _report(tmp_path, "bench_loader")["tables"]
    for table in (wall, cpu):
        assert [r["method"][:3] for r in table["rows"]] == ["(a)", "(b)", "(c)", "(d)", "(e)"]
        assert _positive(r["48px 4x32 k=1 w0"] for r in table["rows"])
        assert table["rows"][3]["48px 4x32 k=1 w0 ratio"] == 1.0  # (d) is the bound the ratios are taken to
    assert {r["decoder"] for r in decoders["rows"]} == {"pyav", "opencv"}
    assert _positive(r["frames/s"] for r in decoders["rows"])


def test_profile_ops_smoke(tmp_path: Path) -> None:
    from benchmarks import profile_ops

    assert profile_ops.main(["--smoke", "--out", str(tmp_path)]) == 0
    (table,) = _report(tmp_path, "profile_ops")["tables"]
    ops, total = table["rows"][:-1], table["rows"][-1]
    assert len(ops) == 5 and total["op"] == "total" and total["share"] == 1.0
    assert sum(r["share"] for r in ops) <= 1.0 + 1e-9 and any("conv" in r["op"] for r in ops)
