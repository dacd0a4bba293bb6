"""benchmarks/common.py: interleaved rounds, tables that round only the markdown, and the report files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.common import Table, medians, rounds, timed, write_report


def test_rounds_interleave_the_cases_and_drop_the_warmup() -> None:
    calls: list[str] = []
    values = rounds({"a": lambda: calls.append("a") or len(calls), "b": lambda: calls.append("b") or len(calls)},
                    repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3  # one call of each in turn, every round
    assert values == {"a": [3, 5], "b": [4, 6]}


def test_timed_cases_give_wall_and_cpu_medians() -> None:
    values = rounds({"spin": timed(lambda: sum(range(20000)))}, repeats=3)
    assert len(values["spin"]) == 3
    wall, cpu = medians(values)["spin"], medians(values, "cpu")["spin"]
    assert wall > 0 and cpu >= 0


def test_table_rounds_the_markdown_and_keeps_raw_values() -> None:
    table = Table("speed", ["model", "clips/s", "note"], formats=[None, "{:.1f}"])
    table.add("r3d_18", 12.345678, None)
    assert table.markdown().splitlines()[-1] == "| r3d_18 | 12.3 |  |"
    assert table.records() == [{"model": "r3d_18", "clips/s": 12.345678, "note": None}]
    with pytest.raises(ValueError, match="speed: a row of 2 values for 3 columns"):
        table.add("r3d_18", 1.0)


def test_report_writes_json_and_markdown_and_a_smoke_run_its_own_files(tmp_path: Path) -> None:
    table = Table("t", ["a"], [[1.5]])
    write_report("bench_x", [table], tmp_path, argv=["--repeats", "2"])
    data = json.loads((tmp_path / "bench_x.json").read_text())
    assert data["command"] == "python -m benchmarks.bench_x --repeats 2" and not data["smoke"]
    assert data["tables"][0]["rows"] == [{"a": 1.5}]
    assert {"torch", "cpu", "gpu", "threads", "date"} <= set(data["environment"])
    assert "| 1.5 |" in (tmp_path / "bench_x.md").read_text()
    write_report("bench_x", [Table("t", ["a"], [[9]])], tmp_path, argv=["--smoke"], smoke=True)
    assert json.loads((tmp_path / "bench_x.json").read_text())["tables"][0]["rows"] == [{"a": 1.5}]  # kept
    assert json.loads((tmp_path / "bench_x-smoke.json").read_text())["smoke"]


def test_smoke_settings_come_first_so_given_options_win() -> None:
    import argparse

    from benchmarks.common import add_report_arguments, parse_with_smoke

    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--size", type=int, default=112)
    add_report_arguments(p, "tiny")
    args = parse_with_smoke(p, ["--smoke", "--size", "64"], ["--repeats", "1", "--size", "32"])
    assert (args.smoke, args.repeats, args.size) == (True, 1, 64)
    assert parse_with_smoke(p, ["--size", "64"], ["--repeats", "1"]).repeats == 10  # no --smoke: defaults


def test_torch_threads_are_restored_even_after_an_error() -> None:
    import torch

    from benchmarks.common import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
        raise RuntimeError("a benchmark failed")
    assert torch.get_num_threads() == before
