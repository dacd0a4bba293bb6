"""Speed of `network.conv.TrimmedConv3d` against plain ``nn.Conv3d`` in the same network, in one run.

The same weights are run with every TrimmedConv3d, with each of them switched back to nn.Conv3d, and with
TrimmedConv3d but ATen's backward-weights kernel everywhere (``WGRAD_MAX_POSITIONS = 0``: no weight gradient as a
forward convolution), interleaved step by step. At the demo's 8x32² clips layer4 works on 1x1x1 maps, where the
plain conv spends most of its backward pass on taps that only meet padding; at 16x112² only layer4's temporal
taps are cut (T = 1).

    python benchmarks/bench_trimmed_conv.py [--network srtg_r3d_18 [r3d_18 ...] --repeats 8 --threads 0]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys

import torch

import network
import network.conv as conv
from benchmarks.bench_models import step_seconds
from network.conv import untrimmed

SHAPES = [(32, 8, 32), (16, 8, 64), (4, 16, 112)]  # (batch, frames, size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", nargs="+", default=["srtg_r3d_18"])
    p.add_argument("--repeats", type=int, default=8, help="measured steps per variant and shape")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--shapes", nargs="+", default=[",".join(map(str, s)) for s in SHAPES],
                   help="clips as B,T,S")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    limit = conv.WGRAD_MAX_POSITIONS
    print(f"CPU threads {torch.get_num_threads()}, forward+backward, median of {args.repeats}")
    print("| network | clip (B, T, S) | nn.Conv3d s | TrimmedConv3d, ATen weight grad s | TrimmedConv3d s | "
          "speed-up over nn.Conv3d | over ATen weight grad |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.network:
        torch.manual_seed(0)
        trimmed = network.create_model(name, num_classes=8).train()
        # (model, WGRAD_MAX_POSITIONS while it runs)
        variants = {"nn.Conv3d": (untrimmed(copy.deepcopy(trimmed)), limit), "aten": (trimmed, 0),
                    "TrimmedConv3d": (trimmed, limit)}
        for batch, frames, size in (tuple(int(v) for v in shape.split(",")) for shape in args.shapes):
            clip = torch.randn(batch, 3, frames, size, size)
            target = torch.randint(0, 8, (batch,))
            times: dict[str, list[float]] = {label: [] for label in variants}
            try:
                for i in range(args.warmup + args.repeats):
                    for label, (model, positions) in variants.items():  # interleaved: load changes hit all alike
                        conv.WGRAD_MAX_POSITIONS = positions
                        wall, _ = step_seconds(model, clip, target)
                        if i >= args.warmup:
                            times[label].append(wall)
            finally:
                conv.WGRAD_MAX_POSITIONS = limit
            plain, aten, trim = (statistics.median(times[label]) for label in variants)
            print(f"| {name} | ({batch}, {frames}, {size}) | {plain:.3f} | {aten:.3f} | {trim:.3f} | "
                  f"{plain / trim:.2f}x | {aten / trim:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
