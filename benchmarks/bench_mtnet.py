"""Forward and forward+backward time of MTNet variants against r3d_18, measured in the same run.

    python -m benchmarks.bench_mtnet [--models mtnet_xs mtnet_xs_g8] [--baseline r3d_18]
                                     [--shape 1 3 16 112 112] [--repeats 5] [--threads 2]

Prints the median seconds per pass (after one warm-up) and the ratio to the baseline. CPU unless CUDA is
present; timings on a shared machine are noisy, so compare ratios from one run only.
"""
from __future__ import annotations

import argparse

import torch

from network import create_model
from tools.profile_model import time_model


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
    clip = torch.randn(args.shape, device=device)
    results = {}
    for name in [args.baseline, *args.models]:
        t = time_model(create_model(name, num_classes=400).to(device), clip, args.repeats, warmup=1)
        results[name] = (t["forward_eval"], t["forward_train"] + t["backward"])
    base_fwd, base_step = results[args.baseline]
    print(f"input {tuple(args.shape)} on {device}, {args.threads} threads, median of {args.repeats}")
    print(f"{'model':<14} {'forward s':>10} {'vs base':>8} {'fwd+bwd s':>10} {'vs base':>8}")
    for name, (fwd, step) in results.items():
        print(f"{name:<14} {fwd:>10.3f} {fwd / base_fwd:>7.2f}x {step:>10.3f} {step / base_step:>7.2f}x")


if __name__ == "__main__":
    main()
