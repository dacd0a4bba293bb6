"""How much of a training step the stem takes, and the mtnet_xs / r3d_18 time its FLOPs would allow.

The stem (the 3×7×7 convolution on the full-size clip, its BatchNorm, ReLU and max pool) is the same in r3d_18
and mtnet_xs. It does a small share of the multiply-adds but a large share of the time, so it sets a floor under
mtnet_xs's time ratio: if every layer after the stem took time in proportion to its multiply-adds, mtnet_xs
would take ``(stem + r3d_18's later layers × their MAC ratio) / r3d_18``. Steps (forward + backward) of each
network and of its stem alone are measured interleaved; multiply-adds (MACs) are counted on the convolutions and
the classifier with full kernels, and printed as GFLOPs at 2 per MAC like docs/model_zoo.md's model table.

    python benchmarks/bench_stem.py [--batch 4 --frames 16 --size 112 --threads 2 --repeats 5]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn as nn

import network
from benchmarks.bench_models import add_clip_arguments, step_seconds

MODELS = ("r3d_18", "mtnet_xs")


class Stem(nn.Module):
    """A network's stem and stem pool alone (the first layers both networks share)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.stem, self.pool = model.stem, model.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stem(x)).mean(dim=(2, 3, 4))  # (B, 64): a loss for the backward pass


def count_macs(model: nn.Module, clip: torch.Tensor) -> tuple[int, int]:
    """Multiply-adds of one forward pass: ``(stem's, the whole network's)``, full kernels."""
    counts: dict[str, int] = {}

    def hook(name: str):
        def count(module: nn.Module, _: tuple, out: torch.Tensor) -> None:
            if isinstance(module, nn.Conv3d):
                per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            else:
                per_output = module.in_features
            counts[name] = counts.get(name, 0) + out.numel() * per_output
        return count

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()
               if isinstance(m, (nn.Conv3d, nn.Linear))]
    try:
        with torch.no_grad():
            model(clip)
    finally:
        for h in handles:
            h.remove()
    stem = sum(v for k, v in counts.items() if k.startswith("stem."))
    return stem, sum(counts.values())


# (channels, (T, H, W)) of a 3x3x3 convolution: layer1 of r3d_18 and mtnet_xs's short and long streams there
WIDTHS = ((64, (8, 28, 28)), (56, (8, 28, 28)), (16, (4, 14, 14)), (8, (4, 14, 14)))


def conv_widths(batch: int, repeats: int) -> dict[int, float]:
    """Median forward + backward seconds of a C→C 3×3×3 convolution for each ``WIDTHS`` entry, interleaved."""
    cases = {c: (nn.Conv3d(c, c, 3, padding=1, bias=False), torch.randn(batch, c, *size, requires_grad=True))
             for c, size in WIDTHS}
    times: dict[int, list[float]] = {c: [] for c in cases}
    for i in range(1 + repeats):
        for c, (conv, x) in cases.items():
            start = time.perf_counter()
            conv(x).sum().backward()
            if i:
                times[c].append(time.perf_counter() - start)
    return {c: statistics.median(v) for c, v in times.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(p)
    p.add_argument("--repeats", type=int, default=5, help="measured steps per model")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps per model first")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    nets = {name: network.create_model(name, num_classes=args.num_classes).train() for name in MODELS}
    cases = {**{name: m for name, m in nets.items()}, **{f"{name} stem": Stem(m) for name, m in nets.items()}}
    targets = {label: torch.randint(0, 64 if label.endswith("stem") else args.num_classes, (args.batch,))
               for label in cases}
    times: dict[str, list[float]] = {label: [] for label in cases}
    for i in range(args.warmup + args.repeats):
        for label, model in cases.items():  # interleaved, so load changes hit every case alike
            wall, _ = step_seconds(model, clip, targets[label])
            if i >= args.warmup:
                times[label].append(wall)
    t = {label: statistics.median(v) for label, v in times.items()}
    macs = {name: count_macs(m, clip) for name, m in nets.items()}
    base, mt = MODELS
    print(f"threads {args.threads}, clip ({args.batch},3,{args.frames},{args.size},{args.size}), forward+backward, "
          f"median of {args.repeats}")
    print("| model | step s | stem s | stem share of step | GFLOPs per clip | stem share of FLOPs |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in MODELS:
        stem_macs, total_macs = macs[name]
        print(f"| {name} | {t[name]:.3f} | {t[name + ' stem']:.3f} | {t[name + ' stem'] / t[name]:.2f} | "
              f"{2 * total_macs / args.batch / 1e9:.2f} | {stem_macs / total_macs:.2f} |")
    later_ratio = (macs[mt][1] - macs[mt][0]) / (macs[base][1] - macs[base][0])
    floor = (t[f"{mt} stem"] + (t[base] - t[f"{base} stem"]) * later_ratio) / t[base]
    print(f"\n{mt} / {base}: measured time ratio {t[mt] / t[base]:.2f}; MAC ratio {macs[mt][1] / macs[base][1]:.2f}; "
          f"MAC ratio after the stem {later_ratio:.2f}; time ratio if the layers after the stem took time in "
          f"proportion to their MACs: {floor:.2f}")
    print(f"{mt}'s layers after the stem: {t[mt] - t[mt + ' stem']:.3f} s against {base}'s "
          f"{t[base] - t[base + ' stem']:.3f} s ({(t[mt] - t[mt + ' stem']) / (t[base] - t[base + ' stem']):.2f}x)")
    widths = conv_widths(args.batch, args.repeats)
    print("\nOne C→C 3×3×3 convolution, forward + backward (the short stream has 56 of layer1's 64 channels, the "
          "long stream 8):\n| C | (T, H, W) | ms | time vs the wider one | MACs vs the wider one |\n"
          "| ---: | --- | ---: | ---: | ---: |")
    for (wide, size), (narrow, _) in zip(WIDTHS[::2], WIDTHS[1::2]):
        print(f"| {wide} | {size} | {widths[wide] * 1e3:.1f} | 1 | 1 |")
        print(f"| {narrow} | {size} | {widths[narrow] * 1e3:.1f} | {widths[narrow] / widths[wide]:.2f} | "
              f"{(narrow / wide) ** 2:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
