"""Which operators a network's forward+backward spends its time on (torch.profiler, CPU), and how many calls.

For each model: one warm-up step, then ``--steps`` profiled forward+backward steps (cross-entropy); the table
lists the top operators by self time with their share of the total and their calls per step (``--shapes``: per
input shape), so that small, frequent or memory-bound ops can be set against the FLOPs of
``tools/profile_model.py``. The profiler measures wall time: on a busy machine, compare shares within one run.

    python -m benchmarks.profile_ops [--models mtnet_xs srtg_r3d_18 r3d_18] [--batch 4 --frames 16 --size 112]
                                     [--threads 2 --steps 2 --top 25 --shapes] [--smoke] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

import network
from benchmarks.bench_models import add_clip_arguments
from benchmarks.common import Table, add_report_arguments, parse_with_smoke, torch_threads, write_report

SMOKE = ["--models", "r3d_18", "--batch", "2", "--frames", "4", "--size", "32", "--num-classes", "8", "--steps", "1",
         "--top", "5"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mtnet_xs", "srtg_r3d_18", "r3d_18"], help="models to profile")
    add_clip_arguments(p)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--steps", type=int, default=2, help="profiled steps per model")
    p.add_argument("--top", type=int, default=25, help="operators listed per model")
    p.add_argument("--shapes", action="store_true", help="one row per operator and input shape")
    add_report_arguments(p, "r3d_18 on 2 clips of 4x32², one profiled step (the test suite)")
    return parse_with_smoke(p, argv, SMOKE)


def _step(model: torch.nn.Module, clip: torch.Tensor, target: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(clip), target).backward()


def op_table(model: torch.nn.Module, clip: torch.Tensor, target: torch.Tensor, steps: int, top: int,
             shapes: bool = False, title: str = "") -> Table:
    """The ``top`` operators of ``steps`` forward+backward steps, by self time, and a total row."""
    _step(model, clip, target)  # warm-up (oneDNN primitive creation, allocator)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof:
        for _ in range(steps):
            _step(model, clip, target)
    events = [e for e in prof.key_averages(group_by_input_shape=shapes) if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    table = Table(title, ["op", "input shapes", "self ms/step", "share", "calls/step"],
                  formats=[None, None, "{:.1f}", "{:.1%}"])
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        table.add(e.key, str(e.input_shapes) if shapes else "-", e.self_cpu_time_total / 1e3 / steps,
                  e.self_cpu_time_total / total, e.count // steps)
    table.add("total", "", total / 1e3 / steps, 1.0, sum(e.count for e in events) // steps)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with torch_threads(args.threads):
        torch.manual_seed(0)
        clip = torch.randn(args.batch, 3, args.frames, args.size, args.size)
        target = torch.randint(0, args.num_classes, (args.batch,))
        tables = [op_table(network.create_model(name, num_classes=args.num_classes).train(), clip, target, args.steps,
                           args.top, args.shapes, f"{name}: clip {tuple(clip.shape)}, {args.threads} threads, "
                                                  f"forward+backward, {args.steps} profiled steps")
                  for name in args.models]
        write_report("profile_ops", tables, args.out, argv, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
