"""Speed of `network.conv.TrimmedConv3d` against plain ``nn.Conv3d`` in the same network, in one run.

The same srtg_r3d_18 weights are run with every TrimmedConv3d and with each of them switched back to nn.Conv3d,
interleaved step by step. At the demo's 8x32² clips layer4 works on 1x1x1 maps, where the plain conv spends most
of its backward pass on taps that only meet padding; at 16x112² only layer4's temporal taps are cut (T = 1).

    python benchmarks/bench_trimmed_conv.py [--network srtg_r3d_18 --repeats 8 --threads 0]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import network  # noqa: E402
from benchmarks.bench_models import step_seconds  # noqa: E402
from network.conv import untrimmed  # noqa: E402

SHAPES = [(32, 8, 32), (16, 8, 64), (4, 16, 112)]  # (batch, frames, size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="srtg_r3d_18")
    p.add_argument("--repeats", type=int, default=8, help="measured steps per variant and shape")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    trimmed = network.create_model(args.network, num_classes=8).train()
    variants = {"nn.Conv3d": untrimmed(copy.deepcopy(trimmed)), "TrimmedConv3d": trimmed}
    print(f"{args.network}, CPU threads {torch.get_num_threads()}, forward+backward, median of {args.repeats}")
    print("| clip (B, T, S) | nn.Conv3d s | TrimmedConv3d s | speed-up |\n| --- | ---: | ---: | ---: |")
    for batch, frames, size in SHAPES:
        clip = torch.randn(batch, 3, frames, size, size)
        target = torch.randint(0, 8, (batch,))
        times: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(args.warmup + args.repeats):
            for name, model in variants.items():  # interleaved: load changes hit both alike
                wall, _ = step_seconds(model, clip, target)
                if i >= args.warmup:
                    times[name].append(wall)
        plain, trim = (statistics.median(times[n]) for n in variants)
        print(f"| ({batch}, {frames}, {size}) | {plain:.3f} | {trim:.3f} | {plain / trim:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
