"""Speed of `network.conv.TrimmedConv3d` against plain ``nn.Conv3d`` in the same network, in one run.

The same weights are run with every TrimmedConv3d, with each of them switched back to nn.Conv3d, and with
TrimmedConv3d but ATen's backward-weights kernel everywhere (``WGRAD_MAX_POSITIONS = 0``: no weight gradient as a
forward convolution), interleaved step by step. At the demo's 8x32² clips layer4 works on 1x1x1 maps, where the
plain conv spends most of its backward pass on taps that only meet padding; at 16x112² only layer4's temporal
taps are cut (T = 1).

    python -m benchmarks.bench_trimmed_conv [--network srtg_r3d_18 [r3d_18 ...] --repeats 8 --threads 0]
                                            [--smoke] [--out DIR]
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch

import network
import network.conv as conv
from benchmarks.bench_models import step
from benchmarks.common import (
    Table,
    add_report_arguments,
    medians,
    parse_with_smoke,
    rounds,
    torch_threads,
    write_report,
)
from network.conv import untrimmed

SHAPES = [(32, 8, 32), (16, 8, 64), (4, 16, 112)]  # (batch, frames, size)
SMOKE = ["--network", "r3d_18", "--repeats", "1", "--warmup", "0", "--shapes", "2,4,16"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", nargs="+", default=["srtg_r3d_18"])
    p.add_argument("--repeats", type=int, default=8, help="measured steps per variant and shape")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--shapes", nargs="+", default=[",".join(map(str, s)) for s in SHAPES],
                   help="clips as B,T,S")
    add_report_arguments(p, "r3d_18 on 2 clips of 4x16², one step per variant (the test suite)")
    args = parse_with_smoke(p, argv, SMOKE)
    limit = conv.WGRAD_MAX_POSITIONS
    try:
        with torch_threads(args.threads):
            table = measure(args, limit)
    finally:
        conv.WGRAD_MAX_POSITIONS = limit
    write_report("bench_trimmed_conv", [table], args.out, argv, args.smoke)
    return 0


def measure(args: argparse.Namespace, limit: int) -> Table:
    table = Table(f"CPU threads {torch.get_num_threads()}, forward+backward, median of {args.repeats}",
                  ["network", "clip (B, T, S)", "nn.Conv3d s", "TrimmedConv3d, ATen weight grad s", "TrimmedConv3d s",
                   "speed-up over nn.Conv3d", "over ATen weight grad"],
                  formats=[None, None, "{:.3f}", "{:.3f}", "{:.3f}", "{:.2f}x", "{:.2f}x"])
    for name in args.network:
        torch.manual_seed(0)
        trimmed = network.create_model(name, num_classes=8).train()
        # (model, WGRAD_MAX_POSITIONS while it runs)
        variants = {"nn.Conv3d": (untrimmed(copy.deepcopy(trimmed)), limit), "aten": (trimmed, 0),
                    "TrimmedConv3d": (trimmed, limit)}
        for batch, frames, size in (tuple(int(v) for v in shape.split(",")) for shape in args.shapes):
            clip = torch.randn(batch, 3, frames, size, size)
            target = torch.randint(0, 8, (batch,))

            def case(model: torch.nn.Module, positions: int):
                timed_step = step(model, clip, target)  # noqa: B023  (used within this iteration only)

                def run():
                    conv.WGRAD_MAX_POSITIONS = positions
                    return timed_step()
                return run

            times = medians(rounds({label: case(*v) for label, v in variants.items()}, args.repeats, args.warmup))
            plain, aten, trim = (times[label] for label in variants)
            table.add(name, f"({batch}, {frames}, {size})", plain, aten, trim, plain / trim, aten / trim)
    return table


if __name__ == "__main__":
    sys.exit(main())
