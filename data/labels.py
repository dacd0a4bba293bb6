"""Label CSVs (``label, youtube_id|id, [time_start, time_end], split``) → :class:`VideoRecord` lists.

Class indices follow the order of first appearance in the CSV (rows of missing videos included), as the original,
because released checkpoints depend on that order. The mapping is stored as JSON in
``<labels dir>/<csv name up to 'train'/'val'/'test'>dictionary.json``.
"""
from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from data.frames_db import FrameReadError, read_n_frames
from data.atomic import atomic_write_text

log = logging.getLogger(__name__)
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class VideoRecord:
    """One video found on disk: 0-based ``index`` among found videos (the original keyed them from 1: bug 18)."""

    index: int
    video_id: str
    label: str
    class_index: int
    path: Path
    n_frames: int
    start: float | None
    end: float | None
    source: str


@dataclass(frozen=True)
class CsvRow:
    """One parsed CSV row; ``rel_path`` is ``<label>/<id>[_<start:06d>_<end:06d>]`` relative to the jpg dir."""

    label: str
    video_id: str
    start: float | None
    end: float | None
    split: str | None
    rel_path: Path
    source: str


def dictionary_path(csv_path: str | Path) -> Path:
    """``<dir>/<name up to 'train', else 'val', else 'test'>dictionary.json``, from the file NAME only.

    Original split the whole path string on 'train'/'val' (wrong when a parent folder contains them: bug 22);
    we look at the name only, preferring a word boundary (``interval_val.csv`` → ``interval_``).
    """
    csv_path = Path(csv_path)
    name = csv_path.name
    for pattern in (r"(?<![A-Za-z]){}", r"{}"):
        for word in ("train", "val", "test"):
            match = re.search(pattern.format(word), name)
            if match:
                return csv_path.parent / f"{name[:match.start()]}dictionary.json"
    return csv_path.parent / f"{csv_path.stem}_dictionary.json"


def _number(value: str | None, column: str, where: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {column} '{value}' is not a number; write seconds like 12.5 or remove the row") from None


def iter_rows(csv_path: str | Path, timeslices: bool) -> Iterator[CsvRow]:
    """Parse ``csv_path`` row by row; a malformed row raises ``ValueError('<file>:<line>: ...; <fix>')``."""
    csv_path = Path(csv_path)
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"{csv_path}: label CSV not found (download or write it; see README 'Datasets')") from None
    with fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        id_col = "youtube_id" if "youtube_id" in header else "id"
        missing = [c for c in ("label", id_col) if c not in header]
        if timeslices:
            missing += [c for c in ("time_start", "time_end") if c not in header]
        if missing:
            raise ValueError(f"{csv_path}:1: header {header} lacks column(s) {missing}; the first line must name "
                             "label, youtube_id (or id)[, time_start, time_end], split")
        for row in reader:
            where = f"{csv_path}:{reader.line_num}"
            if None in row:
                raise ValueError(f"{where}: {len(header) + len(row[None])} fields for {len(header)} columns; "
                                 "quote values that contain commas")
            if all(not (v or "").strip() for v in row.values()):
                continue
            label, vid = (row["label"] or "").strip(), (row[id_col] or "").strip()
            if not label or not vid:
                raise ValueError(f"{where}: empty {'label' if not label else id_col}; fill it in or remove the row")
            if "/" in label or "/" in vid:
                raise ValueError(f"{where}: '/' in label or id ('{label}', '{vid}'); ids are folder names")
            start = end = None
            if timeslices or (row.get("time_start") or "").strip():
                start = _number(row.get("time_start"), "time_start", where)
                end = _number(row.get("time_end"), "time_end", where)
            name = f"{vid}_{int(start):06d}_{int(end):06d}" if timeslices else vid  # type: ignore[arg-type]
            split = (row.get("split") or "").strip() or None
            yield CsvRow(label, vid, start, end, split, Path(label) / name, where)


def load_dictionary(path: Path) -> dict[str, int]:
    """Read a ``{label: index}`` JSON written by :func:`write_dictionary` (or by the original code)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it to rebuild it from the train CSV") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object {{label: index}}; delete it to rebuild it")
    return data


def write_dictionary(path: Path, dictionary: dict[str, int]) -> None:
    """Write the dictionary atomically (several DDP ranks may write the same file)."""
    atomic_write_text(path, json.dumps(dictionary, indent=1))


def load_records(csv_path: Path, jpg_dir: Path, timeslices: bool, *, split: str | None = None,
                 dictionary: dict[str, int] | None = None, save_dictionary: bool = True,
                 strict_labels: bool = False) -> tuple[list[VideoRecord], dict[str, int]]:
    """Records of the videos of ``csv_path`` found under ``jpg_dir``, and the ``{label: class index}`` dictionary.

    ``split`` keeps only rows whose ``split`` column equals it (class indices still count every row);
    ``dictionary`` (else the JSON next to the CSV if present) fixes known indices; ``strict_labels`` (val) makes
    a label unknown to it an error instead of a new class. Missing and unreadable videos are skipped and counted.
    """
    csv_path, jpg_dir = Path(csv_path), Path(jpg_dir)
    dict_file = dictionary_path(csv_path)
    if dictionary is None and dict_file.is_file():
        dictionary = load_dictionary(dict_file)
    known = dict(dictionary or {})
    if strict_labels and not known:
        raise ValueError(f"{csv_path}: no class dictionary ({dict_file} missing); load the train CSV first")
    classes = dict(known)
    records: list[VideoRecord] = []
    rows = missing = 0
    broken: list[str] = []
    for rows, row in enumerate(iter_rows(csv_path, timeslices), start=1):
        if row.label not in classes:
            if strict_labels:
                raise ValueError(f"{row.source}: label '{row.label}' is not in the class dictionary {dict_file} "
                                 f"({len(known)} classes from the train CSV); fix the label or delete the JSON")
            classes[row.label] = len(classes)
        if rows % PROGRESS_EVERY == 0:
            log.info("VideoIter:: Processed %d/%d videos", len(records), rows)
        if split is not None and row.split is not None and row.split != split:
            continue
        path = jpg_dir / row.rel_path
        if not path.is_dir():
            missing += 1
            continue
        try:
            n_frames = read_n_frames(path)
        except FrameReadError as exc:
            broken.append(str(exc))
            continue
        if n_frames < 1:
            broken.append(f"{path}: 0 frames")
            continue
        records.append(VideoRecord(len(records), row.video_id, row.label, classes[row.label], path, n_frames,
                                   row.start, row.end, row.source))
    if missing:
        log.info("%s: %d of %d videos not found under %s (skipped; not downloaded/converted?)",
                 csv_path, missing, rows, jpg_dir)
    if broken:
        log.warning("%s: %d unreadable videos skipped, e.g. %s (run `python -m data.check %s`)",
                    csv_path, len(broken), broken[0], jpg_dir.parent)
    log.info("VideoIter:: - Found and stored: %d/%d videos from csv file %s", len(records), rows, csv_path.name)
    # Original saved the JSON only when it did not exist yet (later labels stayed in memory); we also save it
    # when this CSV added labels, so every later run sees the same indices.
    if save_dictionary and classes != known:
        write_dictionary(dict_file, classes)
    return records, classes
