"""Forward and forward+backward time of MTNet variants against r3d_18, measured in the same run.

    python -m benchmarks.bench_mtnet [--models mtnet_xs mtnet_xs_g8] [--baseline r3d_18]
                                     [--shape 1 3 16 112 112] [--repeats 5] [--threads 2]

Prints the median seconds per pass (after one warm-up) and the ratio to the baseline. CPU unless CUDA is
present; timings on a shared machine are noisy, so compare ratios from one run only.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from network import create_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(name: str, shape: list[int], repeats: int, device: torch.device) -> tuple[float, float]:
    """Median (forward, forward+backward) seconds of ``name`` in train mode on a random clip of ``shape``."""
    model = create_model(name, num_classes=400).to(device).train()
    x = torch.randn(shape, device=device)
    fwd, step = [], []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            model(x)
        _sync(device)
        t1 = time.perf_counter()
        model(x).sum().backward()
        model.zero_grad(set_to_none=True)
        _sync(device)
        t2 = time.perf_counter()
        if i:  # the first pass is a warm-up
            fwd.append(t1 - t0)
            step.append(t2 - t1)
    return statistics.median(fwd), statistics.median(step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mtnet_xs", "mtnet_xs_g8"], help="models to time")
    ap.add_argument("--baseline", default="r3d_18", help="model the ratios are taken against")
    ap.add_argument("--shape", nargs=5, type=int, default=[1, 3, 16, 112, 112], help="input B C T H W")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per model (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = {name: time_model(name, args.shape, args.repeats, device) for name in [args.baseline, *args.models]}
    base_fwd, base_step = results[args.baseline]
    print(f"input {tuple(args.shape)} on {device}, {args.threads} threads, median of {args.repeats}")
    print(f"{'model':<14} {'forward s':>10} {'vs base':>8} {'fwd+bwd s':>10} {'vs base':>8}")
    for name, (fwd, step) in results.items():
        print(f"{name:<14} {fwd:>10.3f} {fwd / base_fwd:>7.2f}x {step:>10.3f} {step / base_step:>7.2f}x")


if __name__ == "__main__":
    main()
