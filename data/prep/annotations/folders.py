"""Any ``SRC/<class>/<video>`` tree, or ``SRC/train/<class>/...`` + ``SRC/val/<class>/...``; without a ``val/``
subtree a deterministic ``--val-fraction`` of each class (chosen by a hash of the file name) is held out.

A video's id is its file stem. Ids are unique in the data set: when several files share a stem (``a/clip.mp4``
and ``val/a/clip.mp4``, or ``b/s0.mp4`` and ``b/s0.mov``), each of them is named after its path below
``--videos`` instead, with ``/`` and ``.`` as ``_`` (``a_clip_mp4``, ``val_a_clip_mp4``), and one WARNING lists them;
two paths that still give one name are refused, naming both files."""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from pathlib import Path

from data.prep.annotations.base import Annotations, Entry, ParseArgs, register
from data.store.video_io import is_video_file

log = logging.getLogger(__name__)


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
    found = [(split, label, p) for split, tree in split_of.items() for label, paths in tree.items() for p in paths]
    ids = unique_ids(root, [p for _, _, p in found])
    out.entries += [Entry(label, ids[p], split, str(p), path=p) for split, label, p in found]
    return out


def unique_ids(root: Path, paths: list[Path]) -> dict[Path, str]:
    """``{file: id}``: the stem, or for files sharing a stem their path below ``root`` (module doc)."""
    stems = Counter(p.stem for p in paths)
    ids = {p: p.stem if stems[p.stem] == 1 else re.sub(r"[/.]", "_", p.relative_to(root).as_posix()) for p in paths}
    renamed = [f"{p.relative_to(root)} -> {ids[p]}" for p in paths if ids[p] != p.stem]
    if renamed:
        log.warning("%s: %d videos share a file name with another one; named after their path: %s%s", root,
                    len(renamed), "; ".join(renamed[:6]), " ..." if len(renamed) > 6 else "")
    owner: dict[str, Path] = {}
    for p in paths:
        other = owner.setdefault(ids[p], p)
        if other != p:
            raise ValueError(f"{other} and {p} would both be stored as video '{ids[p]}'; rename one of them")
    return ids
