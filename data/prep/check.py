"""Verify a converted data set and print one line per broken item with its fix.

    python -m data.check DST [--csv FILE ...] [--timeslices] [--quick] [--fix] [--workers N]

Checks every ``DST/jpg/<class>/<video>``: ``frames.db`` opens and has frames, the ``ObjId`` names match the
folder (``<folder>/frame_00001``..., numbers compared as numbers, so 100,000 frames and more are fine),
``n_frames`` equals the stored rows, every frame decodes (``--quick``: the first, middle and last) and all
frames have one size. CSV rows (of the file's split) without a video folder are one WARNING with the count
(not broken: the video may not be downloaded), as are ids found in both a train and a val CSV. ``--fix``
rewrites wrong or missing ``n_frames`` files. Exit code 1 if anything is (still) broken.
"""
from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from data.catalog.labels import iter_rows, keeps_split, split_of, warn_split_overlap
from data.prep.help_text import plain_help
from data.prep.parallel import parallel_map
from data.store.frames_db import (
    COUNT_NAME,
    DB_NAME,
    FrameReadError,
    connect_readonly,
    decode_jpeg,
    frame_id,
    list_video_dirs,
    read_blobs,
    write_n_frames,
)

log = logging.getLogger(__name__)
RECONVERT = "delete the folder and re-run `python -m data.convert` (it skips finished videos)"


@dataclass
class Report:
    """Result of checking one video folder: ``broken`` and ``fixed`` lines, frames stored."""

    path: Path
    frames: int = 0
    broken: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)


def _stored_count(video_dir: Path) -> int | None:
    try:
        return int((video_dir / COUNT_NAME).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _odd_frame_id(ids: list[str], video_dir: Path) -> str | None:
    """The first ObjId that is not ``<folder>/frame_<n>`` with ``n`` = 1..len(ids), compared as numbers."""
    prefix = frame_id(video_dir, 0).rsplit("_", 1)[0] + "_"
    numbers = []
    for obj_id in ids:
        digits = obj_id[len(prefix):] if isinstance(obj_id, str) and obj_id.startswith(prefix) else ""
        if not digits.isdigit():
            return str(obj_id)
        numbers.append(int(digits))
    numbers.sort()
    if numbers != list(range(1, len(ids) + 1)):
        wanted = set(range(1, len(ids) + 1))
        return next((frame_id(video_dir, n - 1) for n in numbers if n not in wanted),
                    f"{prefix}{numbers[0]:05d} (repeated)")
    return None


def check_video(video_dir: Path, quick: bool = False, fix: bool = False) -> Report:
    """Check one ``<class>/<video>`` folder; with ``fix`` a wrong ``n_frames`` is rewritten."""
    report = Report(video_dir)
    db = video_dir / DB_NAME
    if not db.is_file():
        report.broken.append(f"{video_dir}: {DB_NAME} missing; {RECONVERT}")
        return report
    try:
        con = connect_readonly(db)
    except FrameReadError as exc:
        report.broken.append(f"{exc}; {RECONVERT}")
        return report
    try:
        ids = [row[0] for row in con.execute("SELECT ObjId FROM Images")]
        rows = len(ids)
        if rows == 0:
            report.broken.append(f"{db}: table Images is empty; {RECONVERT}")
            return report
        odd = _odd_frame_id(ids, video_dir)
        if odd is not None:
            report.broken.append(f"{db}: ObjIds are not {frame_id(video_dir, 0)}..{frame_id(video_dir, rows - 1)} "
                                 f"(e.g. '{odd}', folder renamed?); {RECONVERT}")
            return report
        report.frames = rows
        widths = sorted(w for (w,) in con.execute("SELECT DISTINCT size FROM Images"))
        picks = sorted({0, rows // 2, rows - 1}) if quick else range(rows)
        shapes: set[tuple[int, ...]] = set()
        for i, blob in zip(picks, read_blobs(con, video_dir, list(picks))):
            try:
                shapes.add(decode_jpeg(blob, f"{db} frame {i + 1}").shape)
            except FrameReadError as exc:
                report.broken.append(f"{exc}; {RECONVERT}")
                break
        if len(widths) > 1 or len(shapes) > 1:
            sizes = ", ".join(f"{s[1]}x{s[0]}" for s in sorted(shapes)) if len(shapes) > 1 else \
                f"widths {', '.join(str(w) for w in widths)}"
            report.broken.append(f"{db}: frames differ in size ({sizes}); clips need one size: {RECONVERT} "
                                 "with --short-side or --size")
    except sqlite3.DatabaseError as exc:
        report.broken.append(f"{db}: not a readable frame database ({exc}); {RECONVERT}")
        return report
    except FrameReadError as exc:
        report.broken.append(f"{exc}; {RECONVERT}")
        return report
    finally:
        con.close()
    stored = _stored_count(video_dir)
    if stored != rows:
        what = f"{COUNT_NAME} says {stored}" if stored is not None else f"{COUNT_NAME} missing or not an integer"
        if fix:
            write_n_frames(video_dir, rows)
            report.fixed.append(f"{video_dir}: {what}, rewritten to {rows}")
        else:
            report.broken.append(f"{video_dir}: {what} but {DB_NAME} has {rows} frames; run with --fix to rewrite it")
    return report


def check_csv(csv_path: Path, jpg_dir: Path, timeslices: bool) -> tuple[list[str], int]:
    """``(one line per row of this CSV's split whose video folder is missing, rows checked)``."""
    kind = split_of(csv_path)
    rows = [row for row in iter_rows(csv_path, timeslices) if keeps_split(kind, row.split)]
    missing = [f"{row.source} ({jpg_dir / row.rel_path})" for row in rows if not (jpg_dir / row.rel_path).is_dir()]
    return missing, len(rows)


def report_missing_rows(csv_path: Path, missing: list[str], rows: int) -> None:
    """One WARNING with the count and the first five rows without a video."""
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        log.warning("%s: %d of %d rows have no video folder (not converted or not downloaded): %s%s", csv_path,
                    len(missing), rows, "; ".join(missing[:5]), more)


def find_jpg_dir(dst: Path) -> Path:
    """``DST/jpg``, ``DST`` itself if named ``jpg``, or the single ``DST/data/<Folder>/jpg`` of a data set root."""
    if (dst / "jpg").is_dir():
        return dst / "jpg"
    if dst.is_dir() and dst.name == "jpg":
        return dst
    nested = sorted(p for p in dst.glob("data/*/jpg") if p.is_dir())
    if len(nested) == 1:
        return nested[0]
    raise FileNotFoundError(f"{dst}: no jpg/ folder (expected DST/jpg/<class>/<video>/{DB_NAME}"
                            f"{'; several under data/: pass one' if nested else ''})")


def run_check(dst: Path, csvs: list[Path] = (), timeslices: bool = False, quick: bool = False,
              fix: bool = False, workers: int = 1) -> tuple[list[str], list[str], int]:
    """Check a data set; returns ``(broken lines, fixed lines, videos checked)``."""
    jpg = find_jpg_dir(dst)
    videos = list_video_dirs(jpg)
    fn = partial(check_video, quick=quick, fix=fix)
    reports = list(parallel_map(fn, videos, workers))
    broken = [line for r in reports for line in r.broken]
    fixed = [line for r in reports for line in r.fixed]
    by_split: dict[str, list] = {}
    for csv_path in csvs:
        missing, rows = check_csv(csv_path, jpg, timeslices)
        report_missing_rows(csv_path, missing, rows)
        kind = split_of(csv_path)
        if kind is not None:
            rows = (r for r in iter_rows(csv_path, timeslices) if keeps_split(kind, r.split))
            by_split.setdefault(kind, []).extend(rows)
    if "train" in by_split and "val" in by_split:
        warn_split_overlap(by_split["train"], by_split["val"], ", ".join(str(c) for c in csvs))
    return broken, fixed, len(videos)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data.check", description=plain_help(__doc__),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dst", type=Path, help="data set folder holding jpg/ (or the jpg folder itself)")
    ap.add_argument("--csv", type=Path, nargs="+", default=[], help="label CSV(s) whose videos must exist")
    ap.add_argument("--timeslices", action="store_true", help="CSV folders carry _<start:06d>_<end:06d>")
    ap.add_argument("--quick", action="store_true", help="decode only the first, middle and last frame")
    ap.add_argument("--fix", action="store_true", help="rewrite wrong or missing n_frames files")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        broken, fixed, n = run_check(args.dst, args.csv, args.timeslices, args.quick, args.fix, args.workers)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    for line in fixed:
        print(f"FIXED  {line}")
    for line in broken:
        print(f"BROKEN {line}")
    print(f"checked {n} videos{' and ' + str(len(args.csv)) + ' CSV file(s)' if args.csv else ''}: "
          f"{len(broken)} broken, {len(fixed)} fixed")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
