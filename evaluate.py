"""Multi-view testing of a trained model: clip- and video-level top-1/top-5, per-class accuracy, confusion matrix.

    python evaluate.py --checkpoint results/SYNTHETIC/srtg_r3d_18_gates_False/srtg_r3d_18_ep-0016.pth
    python evaluate.py --checkpoint ORIGINAL.pth --network srtg_r3d_34 --spec hacs --dataset <root>/data/
    torchrun --nproc_per_node 2 evaluate.py ...        # videos sharded over processes, rank 0 writes

The network, gates, classes, data set, frame source and validation clip settings come from the checkpoint (any
argument overrides them); original checkpoints, which store none of it, need ``--network`` and ``--spec``. Each
video gives ``--clips`` uniformly spaced clips × ``--crops`` crops (PySlowFast/MMAction2 testing); the
softmax of its views is averaged; identical views (the crops of a square frame, repeated clips of a short video)
are computed once and the log says how many. Writes ``results.json``, ``per_class.csv``, ``predictions.csv`` and
``confusion.png`` to ``--out`` (default: ``<checkpoint folder>/eval_<checkpoint>_<split>_<clips>x<crops>/``).
A video with NaN/inf outputs is counted apart and never scored; any such video makes the metrics invalid: a
WARNING, ``"valid": false`` in ``results.json`` and exit code 3.
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from pathlib import Path

from data.catalog.labels import dictionary_path, load_records
from data.catalog.spec import SOURCES
from data.pipeline.loaders import video_sources
from evaluation.inference import WEIGHTS, check_classes, dump_json, load_model
from evaluation.multiview import (
    VideoFileReader,
    infer_spec,
    plot_confusion,
    read_stored,
    score_videos,
    summarise,
    write_predictions,
)
from evaluation.views import view_config
from network.srtg import gate_pass_rates, reset_gate_stats
from train import distributed as dist
from train.config import DEVICES
from train.engine.cli import str2bool
from train.monitor.logs import close_logging, setup_logging
from train.results.checkpoint import load_checkpoint_file

log = logging.getLogger("evaluate")


def build_parser() -> argparse.ArgumentParser:
    """The evaluate.py command line."""
    p = argparse.ArgumentParser(description="Multi-view evaluation of a checkpoint on a data set split.")
    p.add_argument("--checkpoint", required=True, type=Path, help=".pth written by training, or an original one")
    p.add_argument("--network", type=str, default=None, help="model name (default: the one saved in the checkpoint)")
    p.add_argument("--weights", type=str, default="model", choices=WEIGHTS, help="model: the trained weights; ema: "
                   "their moving average, saved by a run trained with --ema-decay")
    p.add_argument("--dataset", type=str, default=None,
                   help="data set location as for training (default: the checkpoint's --dataset)")
    p.add_argument("--spec", type=str, default=None,
                   help="registered data set (data/catalog/datasets.py): synthetic, hacs, kinetics-<200|400|600|700>, "
                        "moments, ucf101, hmdb51, diving48 (default: the one the checkpoint was trained on)")
    p.add_argument("--split", type=str, default="val", choices=("val", "train"), help="which label CSV to test")
    p.add_argument("--csv", type=Path, default=None, help="another label CSV (e.g. a test split) instead of --split")
    p.add_argument("--clips", type=int, default=10, help="uniformly spaced clips per video (1 = centre clip)")
    p.add_argument("--crops", type=int, default=3, help="crops per clip along the longer side (1 = centre, "
                   "3 = left/centre/right)")
    p.add_argument("--clip-length", type=int, default=None, help="frames per clip (default: checkpoint's val length)")
    p.add_argument("--clip-size", type=int, default=None, help="crop side (default: checkpoint's val size)")
    p.add_argument("--frame-interval", type=int, default=None, help="frame step (default: checkpoint's val interval)")
    p.add_argument("--short-side", type=int, default=None, help="resize the shorter side to this before cropping "
                   "(default: --clip-size, as PySlowFast)")
    p.add_argument("--gates", type=str2bool, default=None, metavar="BOOL", help="SRTG gates (default: checkpoint's)")
    p.add_argument("--batch-size", type=int, default=16, help="views per forward pass")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes reading frames")
    p.add_argument("--source", type=str, default=None, choices=SOURCES,
                   help="read the frame store (store) or decode the video files listed in videos.json (video) "
                   "(default: the checkpoint's --source, else store)")
    p.add_argument("--device", type=str, default="auto", choices=DEVICES, help="auto: CUDA when available")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument("--debug-mode", type=str2bool, default=False, metavar="BOOL", help="DEBUG logging")
    return p


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("clips", "crops", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.workers < 0:
        parser.error("--workers must be >= 0")


def run(args: argparse.Namespace) -> dict:
    """Evaluate (every rank) and write the results (rank 0); returns the summary without the confusion matrix."""
    info = dist.env_info()
    try:
        device = dist.pick_device(args.device, info.local_rank)
        dist.init_process_group(info, device)
        return _evaluate(args, info, device)
    finally:
        close_logging()
        dist.destroy_process_group()


def _evaluate(args: argparse.Namespace, info: dist.DistInfo, device) -> dict:
    started = time.perf_counter()
    saved = load_checkpoint_file(args.checkpoint)
    loaded = load_model(args.checkpoint, args.network, gates=args.gates, device=device, contents=saved,
                        weights=args.weights)
    network = loaded.network
    spec = infer_spec(args.spec, loaded.dataset, args.checkpoint)
    cfg = view_config(loaded.config, clip_length=args.clip_length, clip_size=args.clip_size,
                      frame_interval=args.frame_interval, clips=args.clips, crops=args.crops,
                      short_side=args.short_side, dataset=spec)
    split = args.csv.stem if args.csv else args.split
    ema = "_ema" if args.weights == "ema" else ""
    out = args.out or args.checkpoint.parent / f"eval_{args.checkpoint.stem}{ema}_{split}_{cfg.clips}x{cfg.crops}"
    setup_logging(out / "evaluate.log", args.debug_mode, info.rank)
    trained_on = loaded.config.data.dataset if loaded.config else None
    source = args.source or (loaded.config.data.source if loaded.config else "store")
    paths = spec.resolve(args.dataset or trained_on or spec.defaults.get("dataset", spec.name), source)
    sources = video_sources(paths) if source == "video" else None
    where, find = (sources.videos, sources.find) if sources else (paths.jpg_dir, None)
    csv_path = args.csv or (paths.val_csv if args.split == "val" else paths.train_csv)
    # Class indices come from the checkpoint's class list when it has one (a label it does not know is an
    # error naming the CSV row), else from the data set's dictionary JSON / first appearance in the CSV.
    known = {str(name): i for i, name in enumerate(saved.get("classes") or [])} or None
    records, classes = load_records(csv_path, where, spec.timeslices, dictionary=known, find=find,
                                    save_dictionary=False, strict_labels=known is not None)
    if known is None and not dictionary_path(csv_path).is_file():
        log.warning("%s: no class list in the checkpoint and no %s: class indices follow this CSV's order of "
                    "first appearance, which may differ from training", csv_path, dictionary_path(csv_path).name)
    if not records:
        raise ValueError(f"{csv_path}: no videos found under {where}; check --dataset / --spec / --source")
    check_classes(loaded, classes, str(csv_path))
    names = [str(i) for i in range(loaded.num_classes)]
    for label, index in classes.items():
        names[index] = label
    log.info("evaluate %s (%s, epoch %s) on %s %s: %d videos, %d clips x %d crops of %d x %d² (interval %d), "
             "%d process(es) on %s", network, args.checkpoint, loaded.epoch, spec.name, csv_path.name, len(records),
             cfg.clips, cfg.crops, cfg.clip_length, cfg.size, cfg.frame_interval, info.world_size, device)
    reset_gate_stats(loaded.model)
    scores = score_videos(loaded.model, records, cfg, loaded.mean, loaded.std, loaded.num_classes, device,
                          args.batch_size, args.workers, channel_order=loaded.channel_order,
                          reader=VideoFileReader(sources.options) if sources else read_stored)
    result = summarise(scores, names)
    _report_views(result)
    rates = gate_pass_rates(loaded.model, reduce=dist.all_reduce_sum)  # {} without gated SR blocks
    if rates:
        result["gate_pass_rates"] = {k: (None if math.isnan(v) else v) for k, v in rates.items()}
    confusion = result.pop("confusion")
    result.update({"network": network, "checkpoint": str(args.checkpoint), "epoch": loaded.epoch,
                   "dataset": spec.name, "source": source, "csv": str(csv_path), "clips": cfg.clips, "crops": cfg.crops,
                   "clip_length": cfg.clip_length, "clip_size": cfg.size, "frame_interval": cfg.frame_interval,
                   "short_side": cfg.short_side or cfg.size, "world_size": info.world_size,
                   "seconds": round(time.perf_counter() - started, 2), "errors": scores.errors, "out": str(out)})
    if info.is_main:
        _write(out, result, confusion, names, scores, records)
        _print(result)
    return result


EXIT_INVALID = 3  # the metrics are invalid: some outputs were NaN/inf


def _report_views(result: dict) -> None:
    """One line on the views computed once for several, one WARNING when outputs were not finite."""
    asked = result["views"] + result["nonfinite_views"]
    if result["views_computed"] < asked:
        log.info("computed %d distinct views of %d: %d were identical to another view of their video (the crops "
                 "of a square frame coincide, a short video repeats its clips) and were computed once",
                 result["views_computed"], asked, asked - result["views_computed"])
    if not result["valid"]:
        log.warning("%d of %d videos gave NaN/inf outputs (%d views): they are not scored and the metrics are "
                    "INVALID; check the checkpoint's weights (a diverged run) and the input frames",
                    result["nonfinite_videos"], result["videos"] + result["nonfinite_videos"],
                    result["nonfinite_views"])


def _write(out: Path, result: dict, confusion, names: list[str], scores, records) -> None:
    dump_json({**result, "confusion": confusion.tolist(), "classes": names}, out / "results.json")
    with (out / "per_class.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class_index", "class", "videos", "top1"])
        for name, row in result["per_class"].items():
            writer.writerow([row["index"], name, row["videos"], f"{row['top1']:.6f}"])
    write_predictions(scores, records, names, out / "predictions.csv")
    plot_confusion(confusion, names, out / "confusion.png",
                   title=f"{result['network']} on {result['dataset']}: video top-1 {result['video_top1']:.3f}")


def _print(result: dict) -> None:
    fmt = lambda x: "nan" if math.isnan(x) else f"{x:.4f}"  # noqa: E731
    print(f"{result['network']} on {result['dataset']} ({Path(result['csv']).name}): {result['videos']} videos "
          f"({result['failed']} failed), {result['clips']} clips x {result['crops']} crops")
    if not result["valid"]:
        print(f"  INVALID: {result['nonfinite_videos']} more videos gave NaN/inf outputs (not scored)")
    print(f"  video-level  top-1 {fmt(result['video_top1'])}  top-5 {fmt(result['video_top5'])}")
    print(f"  clip-level   top-1 {fmt(result['clip_top1'])}  top-5 {fmt(result['clip_top5'])}  "
          f"({result['views']} views)")
    print(f"  mean per-class top-1 {fmt(result['mean_class_top1'])}")
    for block, rate in (result.get("gate_pass_rates") or {}).items():
        print(f"  gate pass rate {block:<14s} {'n/a' if rate is None else f'{rate:.4f}'}")
    per_class = result["per_class"]
    if len(per_class) <= 30:
        for name, row in per_class.items():
            print(f"    {name:<28s} {row['top1']:.4f}  ({row['videos']} videos)")
    print(f"  written to {result['out']}")


def main(argv: list[str] | None = None) -> int:
    """Script entry point: one-line errors (exit code 1) for bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    try:
        result = run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not result.get("valid", True):
        print(f"error: {result['nonfinite_videos']} videos gave NaN/inf outputs; the metrics in {result['out']} "
              "are invalid", file=sys.stderr)
        return EXIT_INVALID
    return 0


if __name__ == "__main__":
    sys.exit(main())
