"""Clip transform speed: one vectorised call over the T frames vs a naive per-frame loop, same parameters.

    python -m benchmarks.bench_transforms [--frames 16] [--height 256] [--width 340] [--clips 20] [--smoke]
                                          [--out DIR]

The per-frame baseline calls the same transform on each frame with the same generator seed, which draws the
same crop, flip and augmentation parameters (what imgaug's ``to_deterministic()`` loop of the original did);
the outputs are checked to be equal, then clips/s and the ratio to the per-frame loop are printed.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from benchmarks.common import Table, add_report_arguments, parse_with_smoke, torch_threads, write_report
from data.pipeline.video_transforms import VideoTransform, build_transform
from network.config import get_config

SMOKE = ["--frames", "4", "--height", "48", "--width", "64", "--clips", "2", "--sides", "32"]


def per_frame(transform: VideoTransform, frames: np.ndarray, size: tuple[int, int, int], seed: int) -> torch.Tensor:
    """The naive loop: one call per frame, every call with the same seed (so the same parameters)."""
    return torch.cat([transform(frames[t:t + 1], (1, *size[1:]), rng=np.random.default_rng(seed))
                      for t in range(frames.shape[0])], dim=1)


def rate(fn, clips: int) -> float:
    fn(0)
    t0 = time.perf_counter()
    for k in range(clips):
        fn(k)
    return clips / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16, help="frames per clip")
    ap.add_argument("--height", type=int, default=256, help="stored frame height")
    ap.add_argument("--width", type=int, default=340, help="stored frame width")
    ap.add_argument("--clips", type=int, default=20, help="timed clips per measurement")
    ap.add_argument("--sides", type=int, nargs="+", default=[112, 224], help="output sides S")
    add_report_arguments(ap, "4 frames of 64x48 to 32², 2 clips (the test suite)")
    args = parse_with_smoke(ap, argv, SMOKE)
    cfg = get_config()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.frames, args.height, args.width, 3), dtype=np.uint8)
    cases = {
        "large train, every augmentation": build_transform("large", True, cfg["mean"], cfg["std"], p_any=1, p_each=1),
        "large train, README probabilities": build_transform("large", True, cfg["mean"], cfg["std"]),
        "small eval (crop + resize only)": build_transform("small", False, cfg["mean"], cfg["std"]),
    }
    table = Table(f"clip {args.frames}x{args.height}x{args.width} BGR uint8 -> (3, T, S, S) float32, clips/s, "
                  "1 torch thread", ["transform", "S", "vectorised", "per-frame loop", "speed-up"],
                  formats=[None, None, "{:.1f}", "{:.1f}", "{:.1f}x"])
    with torch_threads(1):
        for name, transform in cases.items():
            for side in args.sides:
                size = (args.frames, side, side)
                for seed in range(3):
                    a = transform(frames, size, rng=np.random.default_rng(seed))
                    b = per_frame(transform, frames, size, seed)
                    if not torch.allclose(a, b, atol=1e-4):
                        raise SystemExit(f"error: {name}: the per-frame output differs (seed {seed})")
                fast = rate(lambda k: transform(frames, size, rng=np.random.default_rng(k)), args.clips)  # noqa: B023
                slow = rate(lambda k: per_frame(transform, frames, size, k), max(2, args.clips // 4))  # noqa: B023
                table.add(name, side, fast, slow, fast / slow)
        write_report("bench_transforms", [table], args.out, argv, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
