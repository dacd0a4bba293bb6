"""How much of a training step the stem takes, and the mtnet_xs / r3d_18 time its FLOPs would allow.

The stem (the 3×7×7 convolution on the full-size clip, its BatchNorm, ReLU and max pool) is the same in r3d_18
and mtnet_xs. It does a small share of the multiply-adds but a large share of the time, so it sets a floor under
mtnet_xs's time ratio: if every layer after the stem took time in proportion to its multiply-adds, mtnet_xs
would take ``(stem + r3d_18's later layers × their MAC ratio) / r3d_18``. Steps (forward + backward) of each
network and of its stem alone are measured interleaved; multiply-adds (MACs) are counted on the convolutions and
the classifier with full kernels, and printed as GFLOPs at 2 per MAC like docs/model_zoo.md's model table.

    python -m benchmarks.bench_stem [--batch 4 --frames 16 --size 112 --threads 2 --repeats 5] [--smoke] [--out DIR]
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
from benchmarks.bench_models import add_clip_arguments, step
from benchmarks.common import (
    Table,
    add_report_arguments,
    medians,
    parse_with_smoke,
    rounds,
    torch_threads,
    write_report,
)

MODELS = ("r3d_18", "mtnet_xs")
SMOKE = ["--batch", "2", "--frames", "4", "--size", "40", "--repeats", "1", "--warmup", "0", "--num-classes", "5"]


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
    add_report_arguments(p, "2 clips of 4x40², one step each (the test suite)")
    return parse_with_smoke(p, argv, SMOKE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return measure(args, argv)


def measure(args: argparse.Namespace, argv: list[str] | None) -> int:
    torch.manual_seed(0)
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    nets = {name: network.create_model(name, num_classes=args.num_classes).train() for name in MODELS}
    cases = {**{name: m for name, m in nets.items()}, **{f"{name} stem": Stem(m) for name, m in nets.items()}}
    targets = {label: torch.randint(0, 64 if label.endswith("stem") else args.num_classes, (args.batch,))
               for label in cases}
    t = medians(rounds({label: step(model, clip, targets[label]) for label, model in cases.items()},
                       args.repeats, args.warmup))
    macs = {name: count_macs(m, clip) for name, m in nets.items()}
    base, mt = MODELS
    later_ratio = (macs[mt][1] - macs[mt][0]) / (macs[base][1] - macs[base][0])
    floor = (t[f"{mt} stem"] + (t[base] - t[f"{base} stem"]) * later_ratio) / t[base]
    after = {name: t[name] - t[name + " stem"] for name in MODELS}
    steps = Table(f"threads {args.threads}, clip ({args.batch},3,{args.frames},{args.size},{args.size}), "
                  f"forward+backward, median of {args.repeats}",
                  ["model", "step s", "stem s", "stem share of step", "GFLOPs per clip", "stem share of FLOPs"],
                  formats=[None, "{:.3f}", "{:.3f}", "{:.2f}", "{:.2f}", "{:.2f}"],
                  note=f"{mt} / {base}: measured time ratio {t[mt] / t[base]:.2f}; MAC ratio "
                       f"{macs[mt][1] / macs[base][1]:.2f}; MAC ratio after the stem {later_ratio:.2f}; time ratio if "
                       f"the layers after the stem took time in proportion to their MACs: {floor:.2f}. {mt}'s layers "
                       f"after the stem: {after[mt]:.3f} s against {base}'s {after[base]:.3f} s "
                       f"({after[mt] / after[base]:.2f}x)")
    for name in MODELS:
        stem_macs, total_macs = macs[name]
        steps.add(name, t[name], t[name + " stem"], t[name + " stem"] / t[name], 2 * total_macs / args.batch / 1e9,
                  stem_macs / total_macs)
    widths = conv_widths(args.batch, args.repeats)
    convs = Table("One C→C 3×3×3 convolution, forward + backward (the short stream has 56 of layer1's 64 channels, "
                  "the long stream 8)", ["C", "(T, H, W)", "ms", "time vs the wider one", "MACs vs the wider one"],
                  formats=[None, None, "{:.1f}", "{:.2f}", "{:.2f}"])
    for (wide, size), (narrow, _) in zip(WIDTHS[::2], WIDTHS[1::2]):
        convs.add(wide, str(size), widths[wide] * 1e3, 1.0, 1.0)
        convs.add(narrow, str(size), widths[narrow] * 1e3, widths[narrow] / widths[wide], (narrow / wide) ** 2)
    write_report("bench_stem", [steps, convs], args.out, argv, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
