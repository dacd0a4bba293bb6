"""What every benchmark shares: device sync, interleaved rounds, tables, the environment header, result files.

A benchmark builds its cases, measures them with `rounds` (one call of each case in turn per round, so a burst
of other load on a shared machine hits every case alike), puts its figures in `Table` objects (raw values; the
markdown rounds them) and hands them to `write_report`, which prints the markdown and writes
``<out>/<name>.json`` and ``<out>/<name>.md`` with the environment (torch, CPU, GPU, threads, date). A ``--smoke``
run writes ``<name>-smoke.*`` so that it never replaces the figures of a real run.

    python -m benchmarks.<name> [--smoke] [--out DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from data.store.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device | str | None) -> None:
    """Wait for the device's queued work (CUDA only; CPU work is done when the call returns)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """``torch.set_num_threads(threads)`` for the block (0: leave the count), restored after it; yields the count.
    A benchmark run in-process (the test suite) leaves the caller's thread count as it found it."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def parse_with_smoke(p: argparse.ArgumentParser, argv: Sequence[str] | None,
                     smoke: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; under ``--smoke`` the ``smoke`` options come first, so options given on the command line
    still win over them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    return p.parse_args([*smoke, *argv]) if getattr(args, "smoke", False) else args


@dataclass(frozen=True)
class Timing:
    """Wall seconds (synchronised on CUDA) and process CPU seconds of one call."""

    wall: float
    cpu: float


def timed(fn: Callable[[], Any], device: torch.device | str | None = None) -> Callable[[], Timing]:
    """``fn`` as a case for `rounds` whose value is its `Timing` (device synchronised before and after)."""
    def case() -> Timing:
        sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        return Timing(time.perf_counter() - wall, time.process_time() - cpu)
    return case


def rounds(cases: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 0) -> dict[str, list[Any]]:
    """Call every case once per round, in turn, for ``warmup + repeats`` rounds; the values of the measured
    rounds per case. Interleaving makes a load change on a shared machine hit every case alike, so ratios taken
    within one call stay fair where absolute figures drift."""
    values: dict[str, list[Any]] = {label: [] for label in cases}
    for i in range(warmup + repeats):
        for label, fn in cases.items():
            value = fn()
            if i >= warmup:
                values[label].append(value)
    return values


def medians(values: Mapping[str, Sequence[Timing]], what: str = "wall") -> dict[str, float]:
    """Median ``wall`` or ``cpu`` seconds per case of `rounds` over `timed` cases."""
    return {label: statistics.median(getattr(t, what) for t in times) for label, times in values.items()}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device | str | None = None) -> dict[str, Any]:
    """Where the figures come from: versions, CPU, cores, torch threads, GPU and the UTC date."""
    try:
        import torchvision  # noqa: PLC0415  (optional here: only its version is recorded)
        vision = torchvision.__version__
    except ImportError:
        vision = None
    gpu = None
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        gpu = torch.cuda.get_device_name(device if device is not None else 0)
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": vision,
            "cuda": torch.version.cuda, "cpu": cpu_model(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "gpu": gpu}


def header_line(env: Mapping[str, Any]) -> str:
    gpu = f"GPU {env['gpu']} (CUDA {env['cuda']})" if env.get("gpu") else "no GPU"
    return (f"{env['date']}; torch {env['torch']}, torchvision {env['torchvision']}, Python {env['python']}; "
            f"CPU {env['cpu']} ({env['cores']} cores, {env['threads']} torch threads); {gpu}")


def _cell(value: Any, fmt: str | None) -> str:
    if value is None:
        return ""
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt.format(value)
    return str(value)


@dataclass
class Table:
    """One table of a report: raw values in ``rows``; ``formats`` (per column, e.g. ``"{:.2f}"``) round them
    for the markdown only, so the JSON keeps every digit."""

    title: str
    columns: Sequence[str]
    rows: list[list[Any]] = field(default_factory=list)
    formats: Sequence[str | None] = ()
    note: str = ""

    def add(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"{self.title}: a row of {len(values)} values for {len(self.columns)} columns")
        self.rows.append(list(values))

    def markdown(self) -> str:
        fmts = list(self.formats) + [None] * (len(self.columns) - len(self.formats))
        lines = [f"### {self.title}", ""] if self.title else []
        lines += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(_cell(v, f) for v, f in zip(row, fmts)) + " |" for row in self.rows]
        return "\n".join(lines + ([f"\n{self.note}"] if self.note else []))

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def add_report_arguments(p: argparse.ArgumentParser, smoke_help: str) -> None:
    """``--smoke`` and ``--out``, the two options every benchmark has."""
    p.add_argument("--smoke", action="store_true", help=smoke_help)
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="folder for <name>.json and <name>.md (default: benchmarks/results)")


def write_report(name: str, tables: Sequence[Table], out: Path | None, argv: Sequence[str] | None = None,
                 smoke: bool = False, device: torch.device | str | None = None,
                 notes: Sequence[str] = (), echo: bool = True) -> dict[str, Any]:
    """Print the report as markdown (``echo``) and write it as ``<out>/<name>.md`` and ``.json``; returns the
    JSON data. ``argv``: the benchmark's arguments as given to its ``main`` (None: this process's); ``out=None``
    prints only. A benchmark may write a partial report first and overwrite it when it finishes."""
    env = environment(device)
    stem = f"{name}-smoke" if smoke else name
    command = " ".join(["python -m benchmarks." + name, *(sys.argv[1:] if argv is None else argv)])
    data = {"benchmark": name, "smoke": smoke, "command": command, "environment": env, "notes": list(notes),
            "tables": [{"title": t.title, "columns": list(t.columns), "rows": t.records(), "note": t.note}
                       for t in tables]}
    text = "\n\n".join([f"## {name}{' (smoke run)' if smoke else ''}", f"`{command}`", header_line(env),
                        *notes, *(t.markdown() for t in tables)]) + "\n"
    if echo:
        print(text, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"{stem}.md", text)
        atomic_write_text(out / f"{stem}.json", json.dumps(data, indent=1, default=str) + "\n")
    return data
