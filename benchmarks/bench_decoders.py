"""Decode speed of the converter's two decoders (PyAV vs OpenCV) on the same generated video, in one run.

    python -m benchmarks.bench_decoders [--size 320x240] [--frames 250] [--repeats 3] [--ext .mp4]

Prints frames/s for each decoder (best of ``--repeats``) and the ratio against PyAV measured in the same run.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from data.store.video_io import DECODERS, iter_frames, write_video_file


def moving_frames(n: int, width: int, height: int, seed: int = 0):
    """Textured frames with a moving disc, so the encoder has real motion and detail to code."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8), (width, height))
    for i in range(n):
        img = bg.copy()
        cv2.circle(img, ((i * 3) % width, height // 2), height // 6, (40, 200, 250), -1)
        yield img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="320x240", help="W x H of the generated video")
    ap.add_argument("--frames", type=int, default=250, help="frames in the generated video")
    ap.add_argument("--repeats", type=int, default=3, help="timed decodes per decoder (best is reported)")
    ap.add_argument("--ext", default=".mp4", help="container/codec by extension: .mp4 .avi .mkv .webm")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench{args.ext}"
        write_video_file(path, moving_frames(args.frames, width, height), fps=25)
        rates = {}
        for decoder in DECODERS:
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                n = sum(1 for _ in iter_frames(path, decoder=decoder))
                best = min(best, time.perf_counter() - t0)
            rates[decoder] = n / best
    print(f"{args.frames} frames {width}x{height} {args.ext}, best of {args.repeats}")
    print(f"{'decoder':<8} {'frames/s':>10} {'vs pyav':>8}")
    for decoder, rate in rates.items():
        print(f"{decoder:<8} {rate:>10.0f} {rate / rates['pyav']:>7.2f}x")


if __name__ == "__main__":
    main()
