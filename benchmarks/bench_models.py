"""Cost of the SR blocks and of MTNet: forward+backward time of each network against its plain baseline, in one run.

Pairs: srtg_r3d_18 vs r3d_18 and srtg_r2plus1d_18 vs r2plus1d_18 (gates off and on), mtnet_xs and mtnet_xs_g8 vs
r3d_18. Models are measured interleaved (one step of each in turn) so that load changes on a shared machine hit
every model alike; the table gives medians of wall time and of process CPU time (the steadier figure on a busy
machine, best with --threads 1) and each ratio to its baseline.

    python -m benchmarks.bench_models [--batch 4 --frames 16 --size 112 --repeats 10 --warmup 2 --threads 1]
                                      [--only mtnet_xs 'srtg_r3d_18 gates off'] [--smoke] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

import torch

import network
from benchmarks.common import (
    Table,
    add_report_arguments,
    medians,
    parse_with_smoke,
    rounds,
    timed,
    torch_threads,
    write_report,
)

# (label, network name, kwargs, baseline label)
CASES = [
    ("r3d_18", "r3d_18", {}, None),
    ("srtg_r3d_18 gates off", "srtg_r3d_18", {}, "r3d_18"),
    ("srtg_r3d_18 gates on", "srtg_r3d_18", {"gates": True}, "r3d_18"),
    ("r2plus1d_18", "r2plus1d_18", {}, None),
    ("srtg_r2plus1d_18 gates off", "srtg_r2plus1d_18", {}, "r2plus1d_18"),
    ("srtg_r2plus1d_18 gates on", "srtg_r2plus1d_18", {"gates": True}, "r2plus1d_18"),
    ("mtnet_xs", "mtnet_xs", {}, "r3d_18"),
    ("mtnet_xs_g8", "mtnet_xs_g8", {}, "r3d_18"),
]
SMOKE = ["--batch", "2", "--frames", "4", "--size", "40", "--num-classes", "8", "--repeats", "1", "--warmup", "0",
         "--threads", "1", "--only", "srtg_r3d_18 gates on", "mtnet_xs"]


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
    add_report_arguments(p, "batch 2 of 4x40², one SR case and mtnet_xs, one step each (the test suite)")
    return parse_with_smoke(p, argv, SMOKE)


def step(model: torch.nn.Module, clip: torch.Tensor, target: torch.Tensor):
    """A case for `benchmarks.common.rounds`: one forward + backward (cross-entropy) of ``model``, timed."""
    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(clip), target).backward()
    return timed(forward_backward, clip.device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return measure(args, argv)


def measure(args: argparse.Namespace, argv: list[str] | None) -> int:
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
    times = rounds({label: step(model, clip, target) for label, model in models.items()}, args.repeats,
                   args.warmup)
    mw, mc = medians(times), medians(times, "cpu")
    table = Table(f"forward+backward, clip ({args.batch},3,{args.frames},{args.size},{args.size}) on {device}, "
                  f"median of {args.repeats} after {args.warmup} warm-up steps",
                  ["model", "wall median s", "wall ratio", "CPU median s", "CPU ratio", "baseline"],
                  formats=[None, "{:.3f}", "{:.3f}", "{:.3f}", "{:.3f}"])
    for label, _, _, base in cases:
        ratios = (mw[label] / mw[base], mc[label] / mc[base]) if base in mw else (1.0, 1.0)
        table.add(label, mw[label], ratios[0], mc[label], ratios[1], base or "-")
    write_report("bench_models", [table], args.out, argv, args.smoke, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
