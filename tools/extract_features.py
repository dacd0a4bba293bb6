"""Pooled features (``forward_features``) of every video of a data set split or of video files, to ``.npy`` + ``.json``.

    python -m tools.extract_features --checkpoint results/.../srtg_r3d_18_ep-0009.pth --dataset <root> --out feats
    python -m tools.extract_features --network tv_r2plus1d_18 --pretrained_3d r2plus1d_18-91a641e6.pth \\
        --clips 1 --crops 1 --clip-length 16 --clip-size 112 --out feats video1.mp4 video2.mp4

Each video gives ``--clips`` × ``--crops`` views cut and normalised as ``evaluate.py`` does (in the model's input
convention, ``model.input_spec``); the features of its views are averaged. ``FILE.npy`` holds one float32 row per
video; ``FILE.json`` its ``ids`` (a data set's video: its folder below ``jpg/``, ``<label>/<id>[_<start>_<end>]``,
one per clip of a time-sliced set; a loose file: its path), ``labels`` (class index, -1 for loose video files),
``label_names`` and how the features were made. Both are rewritten atomically every ``--save-every`` videos, so a
stopped run loses at most those; run the same command again to continue: videos already in the file are skipped
(a file written with another network or views is refused). HDF5 is not written (h5py is not a dependency).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.catalog.labels import load_records
from data.store.atomic import atomic_write, atomic_write_text
from data.store.video_io import VideoDecodeError
from evaluation.inference import LoadedModel, load_model
from evaluation.multiview import ViewDataset, infer_spec
from evaluation.views import decode_clip_frames, make_views, view_config
from network import create_model
from network.config import input_spec_of
from network.pretrained import SOURCE_NAMES, import_public
from network.pretrained.common import head_rows, read_weights
from train.config import DEVICES
from train.distributed import pick_device

log = logging.getLogger("extract_features")


def output_paths(out: Path) -> tuple[Path, Path]:
    """``FILE`` (or ``FILE.npy``/``FILE.json``) -> ``(FILE.npy, FILE.json)``."""
    stem = out.with_suffix("") if out.suffix in (".npy", ".json") else out
    return stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")


def load_for_features(args: argparse.Namespace, device: torch.device) -> LoadedModel:
    """The model from ``--checkpoint``, or ``--network`` with its weights from ``--pretrained_3d`` (public
    weights converted exactly, ours or the original's by name)."""
    if args.checkpoint is not None:
        return load_model(args.checkpoint, args.network, device=device)
    if not args.network or not args.pretrained_3d:
        raise ValueError("pass --checkpoint, or --network with --pretrained_3d")
    rows = head_rows(read_weights(args.pretrained_3d).state) or 400
    model = create_model(args.network, num_classes=rows)
    if import_public(model, args.pretrained_3d, args.network, args.pretrained_source) is None:
        return load_model(args.pretrained_3d, args.network, device=device)
    spec = input_spec_of(model)
    return LoadedModel(model.to(device).eval(), args.network, rows, mean=list(spec.mean), std=list(spec.std),
                       channel_order=spec.channel_order)


def _dataset_items(args: argparse.Namespace, loaded: LoadedModel, cfg: Any) -> Iterator[tuple[str, int, str, Any]]:
    """``(id, class index, label, views-or-error)`` of each video of the split, lazily."""
    spec = infer_spec(args.spec, loaded.dataset, args.checkpoint)
    paths = spec.resolve(args.dataset)
    csv_path = args.csv or (paths.val_csv if args.split == "val" else paths.train_csv)
    known = {name: i for i, name in enumerate(loaded.classes)} or None
    records, _ = load_records(csv_path, paths.jpg_dir, spec.timeslices, dictionary=known, save_dictionary=False,
                              strict_labels=known is not None)
    if not records:
        raise ValueError(f"{csv_path}: no videos found under {paths.jpg_dir}; check --dataset / --spec")
    views = ViewDataset(records, cfg, loaded.mean, loaded.std, loaded.channel_order)
    for i, record in enumerate(records):
        # the stored folder, not the video id: the clips of one video (time slices) share their id
        vid = record.path.relative_to(paths.jpg_dir).as_posix()
        yield vid, record.class_index, record.label, (lambda i=i: views[i][1:])


def _file_items(args: argparse.Namespace, loaded: LoadedModel, cfg: Any) -> Iterator[tuple[str, int, str, Any]]:
    def views(path: Path) -> tuple[torch.Tensor | None, str | None]:
        try:
            frames, _ = decode_clip_frames(path, cfg)
        except VideoDecodeError as exc:
            return None, str(exc)
        return make_views(frames, cfg, loaded.mean, loaded.std, loaded.channel_order), None

    for path in args.videos:
        yield str(path), -1, "", (lambda path=path: views(path))


@torch.inference_mode()
def features(model: torch.nn.Module, views: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    """Mean ``forward_features`` over the views ``(V, 3, T, S, S)`` -> ``(D,)`` float32."""
    out = [model.forward_features(chunk.to(device)).float().cpu() for chunk in views.split(max(1, batch_size))]
    return torch.cat(out).mean(dim=0).numpy()


class FeatureFile:
    """The ``.npy`` rows and ``.json`` index being written; reopened to resume."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.npy, self.json = output_paths(out)
        self.meta, self.rows, self.ids, self.labels, self.names = meta, [], [], [], []
        self.failed: dict[str, str] = {}
        if self.json.is_file():
            self._resume()

    def _resume(self) -> None:
        saved = json.loads(self.json.read_text(encoding="utf-8"))
        differs = [k for k in ("network", "weights", "input_spec", "views") if saved.get(k) != self.meta[k]]
        if differs:
            raise ValueError(f"{self.json}: written with another {', '.join(differs)}; pass another --out or "
                             "delete it to start again")
        done = len(saved["ids"])
        rows = np.load(self.npy) if done else np.zeros((0, 0), np.float32)
        if rows.shape[0] < done:
            raise ValueError(f"{self.npy}: {rows.shape[0]} rows for the {done} ids of {self.json}; delete both")
        self.rows = list(rows[:done])
        self.ids, self.labels, self.names = list(saved["ids"]), list(saved["labels"]), list(saved["label_names"])
        log.info("resuming %s: %d videos done", self.npy, done)

    def add(self, vid: str, label: int, name: str, row: np.ndarray) -> None:
        self.rows.append(row.astype(np.float32))
        self.ids.append(vid)
        self.labels.append(int(label))
        self.names.append(name)
        self.failed.pop(vid, None)

    def save(self) -> None:
        """Rows first, then the index (the index never names a row that is not on disk)."""
        self.npy.parent.mkdir(parents=True, exist_ok=True)
        array = np.stack(self.rows) if self.rows else np.zeros((0, 0), np.float32)
        atomic_write(self.npy, lambda fh: np.save(fh, array))
        doc = {**self.meta, "feature_dim": int(array.shape[1]) if array.size else None, "videos": len(self.ids),
               "ids": self.ids, "labels": self.labels, "label_names": self.names, "failed": self.failed}
        atomic_write_text(self.json, json.dumps(doc, indent=1) + "\n")


def extract(args: argparse.Namespace) -> FeatureFile:
    """Run the extraction of ``args`` (see :func:`build_parser`); returns the written file."""
    device = pick_device(args.device)
    loaded = load_for_features(args, device)
    cfg = view_config(loaded.config, clip_length=args.clip_length, clip_size=args.clip_size,
                      frame_interval=args.frame_interval, clips=args.clips, crops=args.crops,
                      short_side=args.short_side, dataset=loaded.dataset)
    spec = input_spec_of(loaded.model).to_dict()
    meta = {"network": loaded.network, "weights": str(args.checkpoint or args.pretrained_3d), "input_spec": spec,
            "views": {"clips": cfg.clips, "crops": cfg.crops, "clip_length": cfg.clip_length, "clip_size": cfg.size,
                      "frame_interval": cfg.frame_interval, "short_side": cfg.short_side or cfg.size}}
    out = FeatureFile(args.out, meta)
    items = _dataset_items(args, loaded, cfg) if args.dataset else _file_items(args, loaded, cfg)
    done, todo, started, last = set(out.ids), 0, time.perf_counter(), 0.0
    for vid, label, name, make in items:
        if vid in done:
            continue
        views, error = make()
        if views is None:
            log.warning("skipped %s", error)
            out.failed[vid] = str(error)
        else:
            out.add(vid, label, name, features(loaded.model, views, args.batch_size, device))
            done.add(vid)
        todo += 1
        if todo % args.save_every == 0:
            out.save()
        if time.perf_counter() - last >= args.progress_seconds:
            last = time.perf_counter()
            rate = todo / max(1e-9, last - started)
            log.info("%d videos written (%d this run, %.2f videos/s), %d failed", len(out.ids), todo, rate,
                     len(out.failed))
    out.save()
    log.info("%s: %d videos x %s features (%d failed); index %s", out.npy, len(out.ids),
             out.rows[0].shape[0] if out.rows else 0, len(out.failed), out.json)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The extract_features command line."""
    p = argparse.ArgumentParser(description="Pooled features of every video (multi-view averaged) to .npy + .json.")
    p.add_argument("videos", nargs="*", type=Path, metavar="VIDEO", help="video files (instead of --dataset)")
    p.add_argument("--checkpoint", type=Path, default=None, help="a .pth written by training (or an original one "
                   "with --network)")
    p.add_argument("--network", type=str, default=None, help="model name (default: the checkpoint's)")
    p.add_argument("--pretrained_3d", "--pretrained-3d", dest="pretrained_3d", type=Path, default=None,
                   help="weights without a checkpoint of ours: public weights (docs/model_zoo.md) with --network")
    p.add_argument("--pretrained-source", choices=SOURCE_NAMES, default=None,
                   help="source of the --pretrained_3d file (default: recognised)")
    p.add_argument("--dataset", type=str, default=None, help="data set location as for training (frame stores)")
    p.add_argument("--spec", type=str, default=None, help="registered data set (default: the checkpoint's)")
    p.add_argument("--split", choices=("val", "train"), default="val", help="which label CSV of --dataset")
    p.add_argument("--csv", type=Path, default=None, help="another label CSV instead of --split")
    p.add_argument("--out", type=Path, required=True, help="output FILE: writes FILE.npy and FILE.json")
    p.add_argument("--clips", type=int, default=10, help="uniformly spaced clips per video")
    p.add_argument("--crops", type=int, default=3, help="crops per clip (1 = centre, 3 = along the longer side)")
    p.add_argument("--clip-length", type=int, default=None, help="frames per clip (default: checkpoint's, else 16)")
    p.add_argument("--clip-size", type=int, default=None, help="crop side (default: checkpoint's, else 256)")
    p.add_argument("--frame-interval", type=int, default=None, help="frame step (default: checkpoint's, else 2)")
    p.add_argument("--short-side", type=int, default=None, help="resize the shorter side to this before cropping")
    p.add_argument("--batch-size", type=int, default=16, help="views per forward pass")
    p.add_argument("--save-every", type=int, default=50, help="rewrite the files every N videos")
    p.add_argument("--progress-seconds", type=float, default=10.0, help="seconds between progress lines")
    p.add_argument("--device", type=str, default="auto", choices=DEVICES, help="auto: CUDA when available")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; one-line errors, exit code 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.dataset) == bool(args.videos):
        parser.error("pass either --dataset or video files")
    if min(args.clips, args.crops, args.batch_size, args.save_every) < 1:
        parser.error("--clips, --crops, --batch-size and --save-every must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        extract(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
