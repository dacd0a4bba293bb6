"""Any ``SRC/<class>/<video>`` tree, or ``SRC/train/<class>/...`` + ``SRC/val/<class>/...``; without a ``val/``
subtree a deterministic ``--val-fraction`` of each class (chosen by a hash of the file name) is held out."""
from __future__ import annotations

import hashlib
from pathlib import Path

from data.prep.annotations.base import Annotations, Entry, ParseArgs, register
from data.store.video_io import is_video_file


def _videos(folder: Path) -> dict[str, list[Path]]:
    return {c.name: sorted(p for p in c.iterdir() if is_video_file(p))
            for c in sorted(folder.iterdir()) if c.is_dir() and not c.name.startswith(".")}


def _held_out(paths: list[Path], fraction: float) -> set[Path]:
    """``round(fraction * n)`` videos (at least one when n >= 2 and fraction > 0), the lowest name hashes."""
    k = round(fraction * len(paths))
    k = max(k, 1) if fraction > 0 and len(paths) >= 2 else k
    ranked = sorted(paths, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    return set(ranked[:min(k, len(paths) - 1)])


@register("folders")
def parse(args: ParseArgs) -> Annotations:
    """Classes in alphabetical order of their folder names."""
    root = args.videos
    if (root / "val").is_dir():
        train_root = root / "train" if (root / "train").is_dir() else root
        split_of = {"train": _videos(train_root), "val": _videos(root / "val")}
        split_of["train"].pop("val", None)
    else:
        if not 0 <= args.val_fraction < 1:
            raise ValueError(f"--val-fraction {args.val_fraction} must be in [0, 1)")
        videos = _videos(root)
        held = {c: _held_out(p, args.val_fraction) for c, p in videos.items()}
        split_of = {"train": {c: [p for p in ps if p not in held[c]] for c, ps in videos.items()},
                    "val": {c: [p for p in ps if p in held[c]] for c, ps in videos.items()}}
    out = Annotations(sorted({c for tree in split_of.values() for c, ps in tree.items() if ps}))
    for split, tree in split_of.items():
        for label, paths in tree.items():
            out.entries += [Entry(label, p.stem, split, str(p), path=p) for p in paths]
    return out
