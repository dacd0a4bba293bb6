"""Verify a converted data set and print one line per broken item with its fix.

    python -m data.check DST [--csv FILE ...] [--timeslices] [--quick] [--fix] [--workers N]

Checks every ``DST/jpg/<class>/<video>``: ``frames.db`` opens and has frames, the ``ObjId`` names match the
folder (``<folder>/frame_00001``...), ``n_frames`` equals the stored rows, every frame decodes (``--quick``: the
first, middle and last), and every video of the given CSVs exists. ``--fix`` rewrites wrong or missing
``n_frames`` files. Exit code 1 if anything is (still) broken.
"""
from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from data.frames_db import (COUNT_NAME, DB_NAME, FrameReadError, connect_readonly, decode_jpeg, frame_id,
                            list_video_dirs, read_blobs, write_n_frames)
from data.labels import iter_rows
from data.parallel import parallel_map

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
        expected = [frame_id(video_dir, i) for i in range(rows)]
        if sorted(ids) != expected:
            wanted = set(expected)
            odd = next((i for i in sorted(ids) if i not in wanted), ids[0])
            report.broken.append(f"{db}: ObjIds are not {expected[0]}..{expected[-1]} (e.g. '{odd}', folder renamed?);"
                                 f" {RECONVERT}")
            return report
        report.frames = rows
        picks = sorted({0, rows // 2, rows - 1}) if quick else range(rows)
        for i, blob in zip(picks, read_blobs(con, video_dir, list(picks))):
            try:
                decode_jpeg(blob, f"{db} frame {i + 1}")
            except FrameReadError as exc:
                report.broken.append(f"{exc}; {RECONVERT}")
                break
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


def check_csv(csv_path: Path, jpg_dir: Path, timeslices: bool) -> list[str]:
    """One line per CSV row whose video folder does not exist under ``jpg_dir``."""
    return [f"{row.source}: video folder {jpg_dir / row.rel_path} missing; convert the video or remove the row"
            for row in iter_rows(csv_path, timeslices) if not (jpg_dir / row.rel_path).is_dir()]


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
    for csv_path in csvs:
        broken += check_csv(csv_path, jpg, timeslices)
    return broken, fixed, len(videos)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dst", type=Path, help="data set folder holding jpg/ (or the jpg folder itself)")
    ap.add_argument("--csv", type=Path, nargs="+", default=[], help="label CSV(s) whose videos must exist")
    ap.add_argument("--timeslices", action="store_true", help="CSV folders carry _<start:06d>_<end:06d>")
    ap.add_argument("--quick", action="store_true", help="decode only the first, middle and last frame")
    ap.add_argument("--fix", action="store_true", help="rewrite wrong or missing n_frames files")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
