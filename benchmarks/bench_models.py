"""Cost of the SR blocks: forward+backward time of SRTG networks against their plain backbones, in one run.

Pairs: srtg_r3d_18 vs r3d_18 and srtg_r2plus1d_18 vs r2plus1d_18 (gates off and on), mtnet_xs vs r3d_18 (when
MTNet is registered). Models are measured interleaved (one step of each in turn) so that load changes on a
shared machine hit every model alike; the table shows medians of wall time and of process CPU time (the steadier
figure on a busy machine, best with --threads 1) and each ratio to its baseline.

    python benchmarks/bench_models.py [--batch 4 --frames 16 --size 112 --repeats 10 --warmup 2 --threads 1]
                                      [--only mtnet_xs 'srtg_r3d_18 gates off']
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import network

# (label, network name, kwargs, baseline label)
CASES = [
    ("r3d_18", "r3d_18", {}, None),
    ("srtg_r3d_18 gates off", "srtg_r3d_18", {}, "r3d_18"),
    ("srtg_r3d_18 gates on", "srtg_r3d_18", {"gates": True}, "r3d_18"),
    ("r2plus1d_18", "r2plus1d_18", {}, None),
    ("srtg_r2plus1d_18 gates off", "srtg_r2plus1d_18", {}, "r2plus1d_18"),
    ("srtg_r2plus1d_18 gates on", "srtg_r2plus1d_18", {"gates": True}, "r2plus1d_18"),
    ("mtnet_xs", "mtnet_xs", {}, "r3d_18"),
]


def add_clip_arguments(p: argparse.ArgumentParser) -> None:
    """``--batch``, ``--frames``, ``--size`` and ``--num-classes`` of the benchmarked clip (4 x 16 x 112², 400)."""
    p.add_argument("--batch", type=int, default=4, help="clips per step")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (T)")
    p.add_argument("--size", type=int, default=112, help="spatial size (H = W)")
    p.add_argument("--num-classes", type=int, default=400, help="classifier width")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(p)
    p.add_argument("--repeats", type=int, default=10, help="measured steps per model")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured steps per model first")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                   help="measure only these case labels (their baselines are added), e.g. 'mtnet_xs'")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(model: torch.nn.Module, clip: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """One forward + backward (cross-entropy): (wall seconds synchronised on CUDA, process CPU seconds)."""
    model.zero_grad(set_to_none=True)
    _sync(clip.device)
    wall, cpu = time.perf_counter(), time.process_time()
    torch.nn.functional.cross_entropy(model(clip), target).backward()
    _sync(clip.device)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    available = set(network.list_models())
    cases = [c for c in CASES if c[1] in available]
    if args.only:
        unknown = sorted(set(args.only) - {c[0] for c in CASES})
        if unknown:
            raise SystemExit(f"--only: unknown case(s) {unknown}; choose from {[c[0] for c in CASES]}")
        wanted = set(args.only) | {c[3] for c in cases if c[0] in args.only}
        cases = [c for c in cases if c[0] in wanted]
    for label, name, _, _ in CASES:
        if name not in available:
            print(f"note: {name} is not registered; '{label}' skipped")
    torch.manual_seed(0)
    models = {label: network.create_model(name, num_classes=args.num_classes, **kw).to(device).train()
              for label, name, kw, _ in cases}
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    target = torch.randint(0, args.num_classes, (args.batch,), device=device)
    wall: dict[str, list[float]] = {label: [] for label in models}
    cpu: dict[str, list[float]] = {label: [] for label in models}
    for i in range(args.warmup + args.repeats):
        for label, model in models.items():  # interleaved
            w, c = step_seconds(model, clip, target)
            if i >= args.warmup:
                wall[label].append(w)
                cpu[label].append(c)
    print(f"device {device}, threads {torch.get_num_threads()}, clip ({args.batch},3,{args.frames},{args.size},"
          f"{args.size}), forward+backward, median of {args.repeats} after {args.warmup} warm-up steps")
    print("| model | wall median s | wall ratio | CPU median s | CPU ratio | baseline |\n"
          "| --- | ---: | ---: | ---: | ---: | --- |")
    mw = {label: statistics.median(t) for label, t in wall.items()}
    mc = {label: statistics.median(t) for label, t in cpu.items()}
    for label, _, _, base in cases:
        rw, rc = (f"{mw[label] / mw[base]:.3f}", f"{mc[label] / mc[base]:.3f}") if base in mw else ("1", "1")
        print(f"| {label} | {mw[label]:.3f} | {rw} | {mc[label]:.3f} | {rc} | {base or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
