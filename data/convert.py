"""Convert videos or frame folders into the SQLite frame store: ``DST/jpg/<class>/<id>/frames.db`` + ``n_frames``.

    python -m data.convert videos SRC DST [--fps F] [--short-side N | --size WxH] [--quality Q]
                                          [--csv LABELS.csv [--timeslices]] [--workers N] [--decoder opencv|pyav]
    python -m data.convert frames SRC DST [--short-side N | --size WxH] [--quality Q] [--workers N]

Replaces the external ``dataset2database`` package and the original ``jpgs2singlefile.py`` (hard-coded paths,
frames deleted before the commit, no ``n_frames``: bug 25). Every video is written atomically, ``n_frames`` is
the number of frames actually stored, finished videos are skipped on a re-run, and an unreadable input is
reported in the final summary and skipped (exit code 1 only with ``--strict``).
"""
from __future__ import annotations

import argparse
import itertools
import logging
import re
import sqlite3
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from data.frames_db import FrameReadError, is_complete, write_video
from data.labels import iter_rows
from data.parallel import parallel_map
from data.video_io import DECODERS, DEFAULT_DECODER, VIDEO_EXTENSIONS, VideoDecodeError, iter_frames, output_size

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# What a single bad input can raise; anything else (a bug) still stops the run.
INPUT_ERRORS = (VideoDecodeError, FrameReadError, sqlite3.Error, OSError, cv2.error)


@dataclass(frozen=True)
class Options:
    """Frame options shared by both converters."""

    quality: int = 90
    short_side: int | None = None
    size: tuple[int, int] | None = None
    fps: float | None = None
    decoder: str = DEFAULT_DECODER


@dataclass(frozen=True)
class Job:
    """One output video: ``src`` (a video file or a frame folder) → ``dst`` (a video folder), optional cut."""

    src: Path
    dst: Path
    start: float | None = None
    end: float | None = None


def video_jobs(src: Path, dst: Path, csv: Path | None = None, timeslices: bool = False) -> tuple[list[Job], int]:
    """Jobs for ``src/<class>/<id>.<ext>`` (all files, or the CSV's rows); returns ``(jobs, rows without a file)``."""
    jpg = dst / "jpg"
    if csv is None:
        files = sorted(p for p in src.glob("*/*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        return [Job(p, jpg / p.parent.name / p.stem) for p in files], 0
    jobs: dict[Path, Job] = {}
    missing = 0
    for row in iter_rows(csv, timeslices):
        cut = [(row.video_id, row.start if timeslices else None, row.end if timeslices else None)]
        if timeslices:  # an already-trimmed file named like its output folder is used whole
            cut.insert(0, (row.rel_path.name, None, None))
        found = next((Job(src / row.label / f"{stem}{ext}", jpg / row.rel_path, s, e) for stem, s, e in cut
                      for ext in VIDEO_EXTENSIONS if (src / row.label / f"{stem}{ext}").is_file()), None)
        if found is None:
            missing += 1
        else:
            jobs.setdefault(found.dst, found)
    return list(jobs.values()), missing


def _frame_number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def frame_jobs(src: Path, dst: Path) -> list[Job]:
    """Jobs for every frame folder ``src/<class>/<id>/``."""
    return [Job(d, dst / "jpg" / d.parent.name / d.name) for d in sorted(src.glob("*/*")) if d.is_dir()]


def _resized(img: np.ndarray, opts: Options) -> np.ndarray:
    h, w = img.shape[:2]
    out = output_size(w, h, opts.short_side, opts.size)
    return img if out == (w, h) else cv2.resize(img, out, interpolation=cv2.INTER_AREA)


def _folder_frames(folder: Path, opts: Options) -> Iterator[np.ndarray | bytes]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_frame_number)
    if not files:
        raise FrameReadError(f"{folder}: no frame images ({', '.join(IMAGE_EXTENSIONS)})")
    resize = opts.short_side is not None or opts.size is not None
    for path in files:
        data = path.read_bytes()
        if data[:2] == b"\xff\xd8" and not resize:
            yield data  # a JPEG is stored as it is (no re-encoding)
            continue
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise FrameReadError(f"{path}: not a decodable image")
        yield _resized(img, opts)


def convert_one(job: Job, opts: Options, kind: str) -> tuple[Job, int, str | None]:
    """Convert one job; returns ``(job, frames stored, None)`` or ``(job, 0, one-line reason)``."""
    try:
        if kind == "videos":
            frames = iter_frames(job.src, decoder=opts.decoder, start=job.start, end=job.end, fps=opts.fps,
                                 short_side=opts.short_side, size=opts.size)
        else:
            frames = _folder_frames(job.src, opts)
        first = next(frames, None)
        if first is None:
            cut = f" in [{job.start}, {job.end}) s" if job.start is not None else ""
            return job, 0, f"no frames decoded{cut}"
        n = write_video(job.dst, itertools.chain([first], frames), quality=opts.quality)
        return job, n, None
    except INPUT_ERRORS as exc:
        if job.dst.is_dir() and not any(job.dst.iterdir()):
            job.dst.rmdir()  # no empty folder that the label loader would take for a broken video
        return job, 0, str(exc).replace("\n", " ")


def run_jobs(jobs: Sequence[Job], fn: Callable[[Job], tuple[Job, int, str | None]], workers: int,
             desc: str) -> tuple[int, int, list[str]]:
    """Run unfinished ``jobs`` (``workers`` processes); returns ``(converted, already done, failure lines)``."""
    todo = [j for j in jobs if not is_complete(j.dst)]
    failures: list[str] = []
    done = 0
    with tqdm(total=len(todo), desc=desc, unit="video", disable=None) as bar:
        for job, _, error in parallel_map(fn, todo, workers):
            bar.update(1)
            if error is None:
                done += 1
            else:
                failures.append(error if error.startswith(str(job.src)) else f"{job.src}: {error}")
    return done, len(jobs) - len(todo), failures


def parse_size(text: str) -> tuple[int, int]:
    """``'WxH'`` → ``(W, H)`` for ``--size``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise argparse.ArgumentTypeError(f"--size '{text}' must look like 320x240 (width x height)")
    return int(match[1]), int(match[2])


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m data.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="kind", required=True)
    for kind, help_ in (("videos", "SRC/<class>/<id>.{mp4,avi,mkv,webm} → frame databases"),
                        ("frames", "SRC/<class>/<id>/frame_XXXXX.{jpg,png} → frame databases")):
        p = sub.add_parser(kind, help=help_)
        p.add_argument("src", type=Path, help="input root with one folder per class")
        p.add_argument("dst", type=Path, help="output data set folder (frames go to DST/jpg/<class>/<id>/)")
        geometry = p.add_mutually_exclusive_group()
        geometry.add_argument("--short-side", type=int, default=None, help="resize so the shorter side is N pixels")
        geometry.add_argument("--size", type=parse_size, default=None, help="resize to exactly WxH")
        p.add_argument("--quality", type=int, default=90, help="JPEG quality of (re-)encoded frames (default 90)")
        p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
        p.add_argument("--strict", action="store_true", help="exit with code 1 if any input failed")
        if kind == "videos":
            p.add_argument("--fps", type=float, default=None, help="keep at most F frames per second (never duplicates)")
            p.add_argument("--csv", type=Path, default=None, help="convert only the videos of this label CSV")
            p.add_argument("--timeslices", action="store_true",
                           help="with --csv: cut [time_start, time_end) into <id>_<start:06d>_<end:06d>")
            p.add_argument("--decoder", choices=DECODERS, default=DEFAULT_DECODER,
                           help=f"video decoder (default {DEFAULT_DECODER}, measured fastest)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.src.is_dir():
        log.error("%s: input folder not found", args.src)
        return 2
    if args.kind == "videos":
        if args.timeslices and args.csv is None:
            log.error("--timeslices needs --csv LABELS.csv (the time_start/time_end columns)")
            return 2
        opts = Options(args.quality, args.short_side, args.size, args.fps, args.decoder)
        try:
            jobs, missing = video_jobs(args.src, args.dst, args.csv, args.timeslices)
        except (ValueError, FileNotFoundError) as exc:
            log.error("%s", exc)
            return 2
        if missing:
            log.info("%s: %d rows have no video file under %s (skipped)", args.csv, missing, args.src)
    else:
        opts, jobs = Options(args.quality, args.short_side, args.size), frame_jobs(args.src, args.dst)
    if not jobs:
        log.error("%s: nothing to convert (expected %s)", args.src, "SRC/<class>/<id>.mp4" if args.kind == "videos"
                  else "SRC/<class>/<id>/frame_00001.jpg")
        return 2
    done, skipped, failures = run_jobs(jobs, partial(convert_one, opts=opts, kind=args.kind), args.workers,
                                       f"convert {args.kind}")
    log.info("converted %d, already done %d, failed %d (of %d) → %s", done, skipped, len(failures), len(jobs),
             args.dst / "jpg")
    for line in failures:
        log.warning("FAILED %s", line)
    return 1 if failures and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
