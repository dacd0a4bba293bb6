"""Classify raw video files with a trained model: the top-k classes with probabilities per video.

Videos are decoded directly with PyAV (no frame database) and preprocessed as in evaluation: frames in the
model's channel order, ``(x/255 - mean)/std`` (its ``input_spec``, stored in the checkpoint), shorter side
resized to the clip size, ``--clips`` uniformly spaced clips × ``--crops`` crops (centre by default), softmax
averaged over the views.

    python predict.py video1.mp4 video2.avi --checkpoint results/HACS/srtg_r3d_34_gates_False/srtg_r3d_34_ep-0120.pth
    python predict.py video.mp4 --checkpoint ORIGINAL.pth --network srtg_r3d_34 \
        --labels labels/HACS_clips_v1.1_dictionary.json

The network, gates, class names and clip settings come from the checkpoint; original checkpoints, which store
none of them, need ``--network`` (and ``--labels`` for names).

A missing or undecodable video prints one error line naming it; the others still run; the exit code is 1 when
any video failed.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from data.store.video_io import VideoDecodeError
from evaluation.inference import WEIGHTS, load_class_names, load_model
from evaluation.views import decode_clip_frames, make_views, view_config, view_probabilities
from train.config import DEVICES
from train.distributed import pick_device
from train.engine.cli import str2bool


def build_parser() -> argparse.ArgumentParser:
    """The predict.py command line."""
    p = argparse.ArgumentParser(description="Top-k action classes of video files.")
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files (.mp4, .avi, .mkv, .webm, ...)")
    p.add_argument("--network", type=str, default=None, help="model name, e.g. srtg_r3d_34 (default: the one saved "
                   "in the checkpoint; needed for original checkpoints)")
    p.add_argument("--checkpoint", required=True, type=Path,
                   help="a .pth written by training or an original checkpoint")
    p.add_argument("--weights", type=str, default="model", choices=WEIGHTS, help="model: the trained weights; ema: "
                   "their moving average, saved by a run trained with --ema-decay")
    p.add_argument("--labels", type=Path, default=None,
                   help="class names: the *dictionary.json or the train CSV (first-appearance order); "
                        "default: the names stored in the checkpoint")
    p.add_argument("--gates", type=str2bool, default=None, metavar="BOOL",
                   help="SRTG temporal gates (default: as saved in the checkpoint)")
    p.add_argument("--clips", type=int, default=10, help="uniformly spaced clips per video (default 10)")
    p.add_argument("--crops", type=int, default=1, choices=(1, 3), help="1 = centre crop, 3 = left/centre/right")
    p.add_argument("--clip-length", type=int, default=None, help="frames per clip (default: checkpoint's, else 16)")
    p.add_argument("--clip-size", type=int, default=None, help="crop side in pixels (default: checkpoint's, else 256)")
    p.add_argument("--frame-interval", type=int, default=None,
                   help="frame step inside a clip (default: checkpoint's val interval, else 2)")
    p.add_argument("--batch-size", type=int, default=10, help="views per forward pass")
    p.add_argument("--top", type=int, default=5, help="classes to print per video")
    p.add_argument("--device", type=str, default="auto", choices=DEVICES, help="auto: CUDA when available")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (1 if any video failed or the model cannot be loaded)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        device = pick_device(args.device)
        loaded = load_model(args.checkpoint, args.network, device=device, gates=args.gates, weights=args.weights)
        names = load_class_names(args.labels) if args.labels else loaded.classes
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if names and len(names) != loaded.num_classes:
        print(f"error: {args.labels or args.checkpoint}: {len(names)} class names for a {loaded.num_classes}-class "
              "model; pass the labels the model was trained with", file=sys.stderr)
        return 1
    names = names or [str(i) for i in range(loaded.num_classes)]
    cfg = view_config(loaded.config, dataset=loaded.dataset, clip_length=args.clip_length, clip_size=args.clip_size,
                      frame_interval=args.frame_interval, clips=args.clips, crops=args.crops)
    results, failed = [], 0
    for path in args.videos:
        start = time.perf_counter()
        try:
            frames, n_frames = decode_clip_frames(path, cfg)
        except VideoDecodeError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            results.append({"video": str(path), "error": str(exc)})
            continue
        views = make_views(frames, cfg, loaded.mean, loaded.std, loaded.channel_order)
        probs = view_probabilities(loaded.model, views, args.batch_size, device).mean(dim=0)
        top = probs.topk(min(args.top, len(names)))
        results.append({"video": str(path), "frames": n_frames, "views": cfg.views,
                        "seconds": round(time.perf_counter() - start, 3),
                        "top": [{"class": names[i], "index": int(i), "probability": round(float(p), 6)}
                                for p, i in zip(top.values.tolist(), top.indices.tolist())]})
        if not args.json:
            print(f"{path}  ({n_frames} frames, {cfg.clips} clips x {cfg.crops} crops)")
            for rank, entry in enumerate(results[-1]["top"], start=1):
                print(f"  {rank}. {entry['class']:<30s} {entry['probability']:.4f}")
    if args.json:
        print(json.dumps({"network": loaded.network, "checkpoint": str(args.checkpoint), "clip_length": cfg.clip_length,
                          "clip_size": cfg.size, "frame_interval": cfg.frame_interval, "results": results}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
