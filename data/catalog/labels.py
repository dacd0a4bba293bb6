"""Label CSVs (``label, youtube_id|id, [time_start, time_end], split``) → :class:`VideoRecord` lists.

Class indices follow the order of first appearance in the CSV (rows of missing videos included), as the original,
because released checkpoints depend on that order, unless the dictionary JSON already exists (``data.prep.prepare``
writes it in the data set's official class order). The mapping is stored as JSON in
``<labels dir>/<csv name up to 'train'/'val'/'test'>dictionary.json``.

The ``split`` column is honoured: a CSV named ``*train*`` keeps only rows whose split is ``train``/``training``
(or empty), one named ``*val*``/``*test*`` only ``val``/``validation``/``test`` rows; the others are dropped and
counted (docs/differences.md#21). Time-slice folders are ``<id>_<start:06d>_<end:06d>`` (the original's
name); when two different slices of one video in one CSV would share that name, each of them gets the exact
times appended, ``_ms<start ms:06d>_<end ms:06d>`` (docs/differences.md#23).
"""
from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from data.store.atomic import atomic_write_text
from data.store.frames_db import FrameReadError, read_n_frames

log = logging.getLogger(__name__)
PROGRESS_EVERY = 10_000
# The split values each kind of CSV keeps; the kind comes from the file name (see split_of).
SPLIT_NAMES = {"train": ("train", "training"), "val": ("val", "validation", "valid", "test", "testing")}


@dataclass(frozen=True)
class VideoRecord:
    """One video found on disk: 0-based ``index`` among found videos (docs/differences.md#13). ``path`` is its
    frame folder (or, with ``--source video``, its file, and ``start``/``end`` the cut read from it)."""

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

    Only the name is looked at, preferring a word boundary (``interval_val.csv`` → ``interval_``;
    docs/differences.md#16).
    """
    csv_path = Path(csv_path)
    name = csv_path.name
    for pattern in (r"(?<![A-Za-z]){}", r"{}"):
        for word in ("train", "val", "test"):
            match = re.search(pattern.format(word), name)
            if match:
                return csv_path.parent / f"{name[:match.start()]}dictionary.json"
    return csv_path.parent / f"{csv_path.stem}_dictionary.json"


def split_of(csv_path: str | Path) -> str | None:
    """``'train'`` or ``'val'`` from a CSV file NAME (``hmdb_split1_val.csv`` → ``'val'``; ``test`` counts as val)."""
    name = Path(csv_path).name.lower()
    hits = [(m.start(), kind) for kind, word in (("train", "train"), ("val", "val"), ("val", "test"))
            for m in [re.search(rf"(?<![a-z]){word}", name)] if m]
    return min(hits)[1] if hits else None


def keeps_split(kind: str | None, split: str | None) -> bool:
    """True when a row with ``split`` belongs to a CSV of ``kind`` (rows without a split always do)."""
    if kind is None or split is None:
        return True
    return split.lower() in SPLIT_NAMES[kind]


def slice_name(video_id: str, start: float, end: float, exact: bool = False) -> str:
    """``<id>_<start:06d>_<end:06d>``; ``exact`` appends ``_ms<start ms:06d>_<end ms:06d>`` (see module doc)."""
    name = f"{video_id}_{int(start):06d}_{int(end):06d}"
    return f"{name}_ms{round(start * 1000):06d}_{round(end * 1000):06d}" if exact else name


def _safe_name(value: str, column: str, where: str) -> None:
    if value in (".", "..") or any(c in value for c in "/\\\0"):
        raise ValueError(f"{where}: {column} '{value}' cannot be a folder name ('/', '\\', '.' or '..'); "
                         "fix the row so that it stays inside jpg/")


def _number(value: str | None, column: str, where: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {column} '{value}' is not a number; write seconds like 12.5 or remove "
                         "the row") from None


def iter_rows(csv_path: str | Path, timeslices: bool) -> Iterator[CsvRow]:
    """Parse ``csv_path``; a malformed row raises ``ValueError('<file>:<line>: ...; <fix>')``.

    Every row is yielded (no split filter; see :func:`keeps_split`). With ``timeslices`` the whole file is read
    first so that colliding slice names can be told apart (module doc).
    """
    rows = _parse_rows(csv_path, timeslices)
    if not timeslices:
        yield from rows
        return
    rows = list(rows)
    slices: dict[str, set[tuple[float, float]]] = {}
    for row in rows:
        slices.setdefault(row.rel_path.as_posix(), set()).add((row.start, row.end))
    for row in rows:
        if len(slices[row.rel_path.as_posix()]) > 1:
            name = slice_name(row.video_id, row.start, row.end, exact=True)  # type: ignore[arg-type]
            row = CsvRow(row.label, row.video_id, row.start, row.end, row.split, Path(row.label) / name, row.source)
        yield row


def _parse_rows(csv_path: str | Path, timeslices: bool) -> Iterator[CsvRow]:
    csv_path = Path(csv_path)
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"{csv_path}: label CSV not found (download or write it; see "
                                "docs/datasets.md)") from None
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
            _safe_name(label, "label", where)
            _safe_name(vid, id_col, where)
            start = end = None
            if timeslices or (row.get("time_start") or "").strip():
                start = _number(row.get("time_start"), "time_start", where)
                end = _number(row.get("time_end"), "time_end", where)
            name = slice_name(vid, start, end) if timeslices else vid  # type: ignore[arg-type]
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
    # two labels on one index would be one class; a gap would give the next new label an index already taken
    if sorted(data.values()) != list(range(len(data))):
        shared = next((f"'{a}' and '{b}' share {i}" for a, i in data.items() for b, j in data.items()
                       if a < b and i == j), f"indices {sorted(set(data.values()) - set(range(len(data))))[:3]}")
        raise ValueError(f"{path}: class indices must be 0..{len(data) - 1}, each once ({shared}); fix the JSON or "
                         "delete it to rebuild it from the train CSV")
    return data


def write_dictionary(path: Path, dictionary: dict[str, int]) -> None:
    """Write the dictionary atomically (several DDP ranks may write the same file)."""
    atomic_write_text(path, json.dumps(dictionary, indent=1))


# A video's location for load_records: ``(path, n_frames, start, end)``, or None when it is not there.
Found = tuple[Path, int, float | None, float | None]


def find_stored(jpg_dir: Path) -> Callable[[CsvRow], Found | None]:
    """The frame-store lookup: ``jpg_dir/<rel_path>`` and its ``n_frames`` (raises FrameReadError if unreadable)."""
    def find(row: CsvRow) -> Found | None:
        path = jpg_dir / row.rel_path
        return (path, read_n_frames(path), row.start, row.end) if path.is_dir() else None
    return find


def load_records(csv_path: Path, jpg_dir: Path, timeslices: bool, *, split: str | None = None,
                 dictionary: dict[str, int] | None = None, save_dictionary: bool = True,
                 strict_labels: bool = False, find: Callable[[CsvRow], Found | None] | None = None,
                 max_missing: float | None = None) -> tuple[list[VideoRecord], dict[str, int]]:
    """Records of the videos of ``csv_path`` found under ``jpg_dir``, and the ``{label: class index}`` dictionary.

    ``find`` locates a row's video (default `find_stored`: its frame folder; ``--source video`` passes
    `data.catalog.video_sources.VideoSources.find`, with ``jpg_dir`` the video folder, named in messages).

    Rows of another split than ``split`` (default: :func:`split_of` the file name) are dropped and counted
    (class indices still count every row); duplicate rows are kept once and reported. ``dictionary`` (else the
    JSON next to the CSV if present) fixes known indices; ``strict_labels`` (val) makes a label unknown to it an
    error instead of a new class. Missing and unreadable videos are skipped and counted: one WARNING with the
    count and examples, and a ``ValueError`` when more than ``max_missing`` percent of the rows are missing (a
    half-mounted or half-converted data set must not train on what is left).
    """
    csv_path, jpg_dir = Path(csv_path), Path(jpg_dir)
    kind = split_of(csv_path) if split is None else split
    dict_file = dictionary_path(csv_path)
    if dictionary is None and dict_file.is_file():
        dictionary = load_dictionary(dict_file)
    known = dict(dictionary or {})
    if strict_labels and not known:
        raise ValueError(f"{csv_path}: no class dictionary ({dict_file} missing); load the train CSV first")
    classes = dict(known)
    locate = find or find_stored(jpg_dir)
    records: list[VideoRecord] = []
    rows = missing = 0
    missing_rows: list[CsvRow] = []
    broken: list[str] = []
    other_split: dict[str, int] = {}
    seen: dict[Path, str] = {}
    duplicates: list[str] = []
    for rows, row in enumerate(iter_rows(csv_path, timeslices), start=1):
        if row.label not in classes:
            if strict_labels:
                raise ValueError(f"{row.source}: label '{row.label}' is not in the class dictionary {dict_file} "
                                 f"({len(known)} classes from the train CSV); fix the label or delete the JSON")
            classes[row.label] = len(classes)
        if rows % PROGRESS_EVERY == 0:
            log.info("VideoIter:: Processed %d/%d videos", len(records), rows)
        if not _row_in_split(kind, row.split):
            other_split[row.split] = other_split.get(row.split, 0) + 1  # type: ignore[index]
            continue
        if row.rel_path in seen:
            duplicates.append(f"{row.source} repeats {seen[row.rel_path]}")
            continue
        seen[row.rel_path] = row.source
        try:
            found = locate(row)
        except FrameReadError as exc:
            broken.append(str(exc))
            continue
        if found is None:
            missing += 1
            if len(missing_rows) < 3:
                missing_rows.append(row)
            continue
        path, n_frames, start, end = found
        if n_frames < 1:
            broken.append(f"{path}: 0 frames")
            continue
        records.append(VideoRecord(len(records), row.video_id, row.label, classes[row.label], path, n_frames,
                                   start, end, row.source))
    if other_split:
        log.warning("%s: dropped %d rows of another split (%s); this file keeps split '%s'", csv_path,
                    sum(other_split.values()), ", ".join(f"{k}: {v}" for k, v in sorted(other_split.items())), kind)
    if duplicates:
        log.warning("%s: %d duplicate rows kept once, e.g. %s", csv_path, len(duplicates), "; ".join(duplicates[:3]))
    if missing:
        report_missing(csv_path, jpg_dir, missing, missing + len(records) + len(broken), missing_rows, max_missing,
                       store=find is None)
    if broken:
        log.warning("%s: %d unreadable videos skipped, e.g. %s (run `python -m data.check %s`)",
                    csv_path, len(broken), broken[0], jpg_dir.parent)
    log.info("VideoIter:: - Found and stored: %d/%d videos from csv file %s", len(records), rows, csv_path.name)
    # Original saved the JSON only when it did not exist yet (later labels stayed in memory); we also save it
    # when this CSV added labels, so every later run sees the same indices.
    if save_dictionary and classes != known:
        try:
            write_dictionary(dict_file, classes)
        except OSError as exc:  # a read-only data set (shared cluster storage): the classes are kept in memory
            log.warning("%s: cannot write the class dictionary (%s); using it from memory (class order of %s); "
                        "write it once from a writable copy to fix the order", dict_file,
                        exc.strerror or exc.__class__.__name__, csv_path.name)
    return records, classes


def report_missing(csv_path: Path, jpg_dir: Path, missing: int, total: int, examples: list[CsvRow],
                   max_missing: float | None, store: bool = True) -> None:
    """One WARNING naming the count, the share and examples of the rows without a video (a row whose video is
    stored under another label says so); a ``ValueError`` above ``max_missing`` percent."""
    shown = []
    for row in examples:
        other = next(jpg_dir.glob(f"*/{row.rel_path.name}"), None) if store else None
        moved = f", stored under label '{other.parent.name}': the CSV's label differs" if other is not None else ""
        shown.append(f"{row.source} ({row.rel_path}{moved})")
    share = 100.0 * missing / max(1, total)
    line = (f"{csv_path}: {missing} of {total} videos ({share:.1f}%) not found under {jpg_dir}, e.g. "
            f"{'; '.join(shown)}")
    if max_missing is not None and share > max_missing:
        raise ValueError(f"{line}; more than --max-missing {max_missing:g}%: convert or mount the missing videos, "
                         "fix the CSV, or accept the loss with --max-missing 100")
    log.warning("%s (skipped)", line)


def _row_in_split(kind: str | None, split: str | None) -> bool:
    if kind in SPLIT_NAMES or kind is None:
        return keeps_split(kind, split)
    return split is None or split == kind  # an explicit split name that is not a known kind: exact match


def split_overlap(train: Iterable[VideoRecord | CsvRow], val: Iterable[VideoRecord | CsvRow]) -> list[str]:
    """Video ids present in both ``train`` and ``val``, in val order."""
    train_ids = {r.video_id for r in train}
    return list(dict.fromkeys(r.video_id for r in val if r.video_id in train_ids))


def warn_split_overlap(train: Iterable[VideoRecord | CsvRow], val: Iterable[VideoRecord | CsvRow],
                       where: str) -> list[str]:
    """Log one WARNING (count + three examples) when ids appear in both splits; returns those ids."""
    both = split_overlap(train, val)
    if both:
        log.warning("%s: %d video ids are in both train and val, e.g. %s; validation results are optimistic "
                    "(remove them from one CSV)", where, len(both), ", ".join(both[:3]))
    return both
