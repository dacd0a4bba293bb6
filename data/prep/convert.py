"""Convert videos or frame folders into the SQLite frame store: ``DST/jpg/<class>/<id>/frames.db`` + ``n_frames``.

    python -m data.convert videos SRC DST [--fps F] [--short-side N | --size WxH] [--quality Q]
                                          [--csv A.csv [B.csv ...] [--timeslices]] [--workers N]
                                          [--decoder opencv|pyav] [--overwrite] [--max-failed P%]
    python -m data.convert frames SRC DST [--short-side N | --size WxH] [--quality Q] [--workers N] [--overwrite]

Replaces the external ``dataset2database`` package and the original ``jpgs2singlefile.py``
(docs/differences.md#12, #24). Every video is written atomically, ``n_frames`` is
the number of frames actually stored, and finished videos are skipped on a re-run; the size/fps/quality options
are kept in ``DST/convert_options.json`` and a re-run with other ones stops unless ``--overwrite`` is given.
Videos are found by extension in any case (``.MP4``), with or without ``--csv``; other files are counted.
An unreadable video is listed and skipped (exit code 1 when more than ``--max-failed`` percent failed); a
full disk or a permission error stops the run at once (exit code 3). A run killed mid-video leaves no
process behind (`data.prep.parallel`); SIGTERM removes the partial file on the way out, and a re-run removes those
of killed runs (``.frames.db.tmp-<pid>`` of a pid that is gone).
"""
from __future__ import annotations

import argparse
import errno
import itertools
import json
import logging
import re
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from data.catalog.labels import iter_rows
from data.prep.help_text import plain_help
from data.prep.parallel import exit_on_sigterm, parallel_map
from data.store.atomic import atomic_write_text, remove_stale_temps
from data.store.frames_db import FrameReadError, is_complete, write_video
from data.store.video_io import DECODERS, DEFAULT_DECODER, VideoDecodeError, is_video_file, iter_frames, output_size

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# What a single bad input can raise; anything else (a bug) still stops the run.
INPUT_ERRORS = (VideoDecodeError, FrameReadError, sqlite3.Error, OSError, cv2.error)
# ... unless it is the machine's fault: then every later video would fail the same way, so the run stops.
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}
FATAL_SQLITE = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN,
                sqlite3.SQLITE_IOERR}
OPTIONS_NAME = "convert_options.json"
EXIT_FAILED, EXIT_USAGE, EXIT_FATAL = 1, 2, 3


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


@dataclass
class VideoIndex:
    """The video files of ``src/<class>/`` and of ``src/`` itself (flat), keyed by ``(class or '', stem)``.

    Extensions match case-insensitively (:data:`VIDEO_EXTENSIONS`); other files are counted by extension.
    Files sharing a key (``s0.mp4`` and ``s0.mov``) are kept in ``clashes``: they would be one stored video.
    """

    files: dict[tuple[str, str], Path] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    clashes: dict[tuple[str, str], list[Path]] = field(default_factory=dict)

    @classmethod
    def scan(cls, src: Path) -> VideoIndex:
        index = cls()
        for path in sorted(itertools.chain(src.glob("*"), src.glob("*/*"))):
            if path.name.startswith(".") or not path.is_file():
                continue
            if is_video_file(path):
                key = ("" if path.parent == src else path.parent.name, path.stem)
                if index.files.setdefault(key, path) != path:
                    index.clashes.setdefault(key, [index.files[key]]).append(path)
            else:
                index.skipped[path.suffix.lower() or "(no extension)"] += 1
        return index

    def find(self, label: str, stems: Sequence[str]) -> Path | None:
        """The first of ``src/<label>/<stem>.*`` then ``src/<stem>.*`` (flat folder) for the ``stems`` in order;
        ``ValueError`` when that name is held by several files."""
        key = next((key for stem in stems for key in ((label, stem), ("", stem)) if key in self.files), None)
        if key is None:
            return None
        self.refuse_clash(key)
        return self.files[key]

    def refuse_clash(self, key: tuple[str, str]) -> None:
        """``ValueError`` naming the files that share ``key`` (they would be one stored video)."""
        if key in self.clashes:
            raise ValueError(f"{' and '.join(map(str, self.clashes[key]))} would both be stored as video "
                             f"'{'/'.join(k for k in key if k)}'; rename all but one of them")


def video_jobs(src: Path, dst: Path, csvs: Sequence[Path] = (), timeslices: bool = False
               ) -> tuple[list[Job], list[str], VideoIndex]:
    """Jobs for ``src/<class>/<id>.<ext>`` (every video, or the rows of the ``csvs``; a flat ``src/<id>.<ext>``
    also matches a row); returns ``(jobs, one line per row without a video, index of src)``."""
    jpg = dst / "jpg"
    index = VideoIndex.scan(src)
    if not csvs:
        for key in sorted(index.clashes):
            if key[0]:
                index.refuse_clash(key)
        return [Job(p, jpg / label / p.stem) for (label, _), p in sorted(index.files.items()) if label], [], index
    jobs: dict[Path, Job] = {}
    missing: list[str] = []
    for row in itertools.chain.from_iterable(iter_rows(csv, timeslices) for csv in csvs):
        # an already-trimmed file named like its output folder is used whole
        whole = index.find(row.label, [row.rel_path.name]) if timeslices else None
        path = whole or index.find(row.label, [row.video_id])
        if path is None:
            missing.append(f"{row.source} ({row.label}/{row.video_id})")
            continue
        cut = (None, None) if whole or not timeslices else (row.start, row.end)
        job = Job(path, jpg / row.rel_path, *cut)
        if jobs.setdefault(job.dst, job) != job:
            raise ValueError(f"{row.source}: folder {job.dst} is also written for another row ({jobs[job.dst].src}, "
                             f"{jobs[job.dst].start}-{jobs[job.dst].end} s); give the rows different ids")
    return list(jobs.values()), missing, index


def report_missing(missing: Sequence[str], src: Path) -> None:
    """One WARNING naming the first five rows without a video and the count."""
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        log.warning("%d CSV rows have no video file under %s (skipped): %s%s", len(missing), src,
                    "; ".join(missing[:5]), more)


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


def machine_fault(exc: BaseException) -> bool:
    """True for errors of the disk or the permissions (full, read-only, access denied), not of one video."""
    if isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS:
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in FATAL_SQLITE


def convert_one(job: Job, opts: Options, kind: str) -> tuple[Job, int, str | None, bool]:
    """Convert one job; returns ``(job, frames stored, None, False)`` or ``(job, 0, one-line reason, fatal)``."""
    try:
        if kind == "videos":
            frames = iter_frames(job.src, decoder=opts.decoder, start=job.start, end=job.end, fps=opts.fps,
                                 short_side=opts.short_side, size=opts.size)
        else:
            frames = _folder_frames(job.src, opts)
        first = next(frames, None)
        if first is None:
            cut = f" in [{job.start}, {job.end}) s" if job.start is not None else ""
            return job, 0, f"no frames decoded{cut}", False
        n = write_video(job.dst, itertools.chain([first], frames), quality=opts.quality)
        return job, n, None, False
    except INPUT_ERRORS as exc:
        try:
            if job.dst.is_dir() and not any(job.dst.iterdir()):
                job.dst.rmdir()  # no empty folder that the label loader would take for a broken video
        except OSError:
            pass  # the original error is the one to report
        return job, 0, str(exc).replace("\n", " "), machine_fault(exc)


@dataclass
class Summary:
    """Outcome of :func:`run_jobs`: converted, already done, failure lines, the fatal line that stopped it."""

    total: int
    done: int = 0
    already: int = 0
    failures: list[str] = field(default_factory=list)
    fatal: str | None = None
    failed: dict[Path, str] = field(default_factory=dict)  # output folder -> the failure line


def run_jobs(jobs: Sequence[Job], fn: Callable[[Job], tuple[Job, int, str | None, bool]], workers: int,
             desc: str, overwrite: bool = False) -> Summary:
    """Run the unfinished ``jobs`` (all with ``overwrite``) over ``workers`` processes; stops at a machine fault."""
    todo = list(jobs) if overwrite else [j for j in jobs if not is_complete(j.dst)]
    stale = [p for job in todo for p in remove_stale_temps(job.dst)]
    if stale:
        log.info("removed %d partial files of a killed run, e.g. %s", len(stale), stale[0])
    summary = Summary(len(jobs), already=len(jobs) - len(todo))
    with tqdm(total=len(todo), desc=desc, unit="video", disable=None) as bar:
        results = parallel_map(fn, todo, workers)
        for job, _, error, fatal in results:
            bar.update(1)
            if error is None:
                summary.done += 1
                continue
            line = error if error.startswith(str(job.src)) else f"{job.src}: {error}"
            if fatal:
                summary.fatal = f"{line} (writing {job.dst}); not the video's fault: free space or fix permissions" \
                                ", then re-run (finished videos are kept)"
                results.close()  # cancels the videos not started yet
                break
            summary.failures.append(line)
            summary.failed[job.dst] = line
    return summary


def check_options(dst: Path, opts: Options, kind: str, overwrite: bool) -> str | None:
    """Compare ``opts`` with ``DST/convert_options.json`` of an earlier run; returns an error line or None.

    Writes the file (first run, same options, or ``overwrite``) so that a later run can tell.
    """
    stored = {"kind": kind, **{k: v for k, v in asdict(opts).items() if k != "decoder"}}
    stored["size"] = list(opts.size) if opts.size else None
    path = dst / OPTIONS_NAME
    if path.is_file() and not overwrite:
        try:
            before = json.loads(path.read_text())
        except json.JSONDecodeError:
            before = None
        if before != stored:
            diff = ", ".join(f"{k} {before.get(k)} -> {v}" for k, v in stored.items()
                             if not isinstance(before, dict) or before.get(k) != v) if isinstance(before, dict) \
                else "unreadable"
            return (f"{path}: {dst} was converted with other options ({diff}); add --overwrite to re-convert "
                    "every video with the new ones, or use another DST")
    atomic_write_text(path, json.dumps(stored, sort_keys=True) + "\n")
    return None


def execute(jobs: Sequence[Job], opts: Options, kind: str, dst: Path, workers: int = 1, overwrite: bool = False,
            max_failed: float = 1.0, skipped: Counter | None = None) -> int:
    """Convert ``jobs`` into ``dst`` and log the summary; returns the exit code (0, 1 too many failed, 3 fatal)."""
    return convert_jobs(jobs, opts, kind, dst, workers, overwrite, max_failed, skipped)[0]


def convert_jobs(jobs: Sequence[Job], opts: Options, kind: str, dst: Path, workers: int = 1, overwrite: bool = False,
                 max_failed: float = 1.0, skipped: Counter | None = None) -> tuple[int, Summary | None]:
    """:func:`execute` that also returns the :class:`Summary` (None when the run did not start)."""
    try:
        error = check_options(dst, opts, kind, overwrite)
    except OSError as exc:
        log.error("STOPPED %s: cannot write (%s); free space or fix permissions, then re-run", dst, exc.strerror)
        return EXIT_FATAL, None
    if error:
        log.error("%s", error)
        return EXIT_USAGE, None
    summary = run_jobs(jobs, partial(convert_one, opts=opts, kind=kind), workers, f"convert {kind}", overwrite)
    if summary.fatal:
        log.error("STOPPED %s", summary.fatal)
        return EXIT_FATAL, summary
    skip = f", skipped {sum(skipped.values())} files that are not videos " \
           f"({', '.join(f'{k}: {v}' for k, v in sorted(skipped.items()))})" if skipped else ""
    log.info("converted %d, already done %d, failed %d (of %d)%s → %s", summary.done, summary.already,
             len(summary.failures), summary.total, skip, dst / "jpg")
    for line in summary.failures:
        log.warning("FAILED %s", line)
    share = 100.0 * len(summary.failures) / max(1, summary.total)
    if summary.failures and share > max_failed:
        log.error("%d of %d videos (%.1f%%) failed, more than --max-failed %g%%; fix or remove them (listed above)",
                  len(summary.failures), summary.total, share, max_failed)
        return EXIT_FAILED, summary
    return 0, summary


def parse_percent(text: str) -> float:
    """``'1%'`` or ``'1'`` → 1.0 for ``--max-failed``."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-failed '{text}' must be a percentage like 1% or 0.5") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"--max-failed '{text}' must be between 0 and 100 (%)")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """``'WxH'`` → ``(W, H)`` for ``--size``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise argparse.ArgumentTypeError(f"--size '{text}' must look like 320x240 (width x height)")
    return int(match[1]), int(match[2])


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """Frame-size, quality and failure-policy options shared by ``data.prep.convert`` and ``data.prep.prepare``."""
    geometry = p.add_mutually_exclusive_group()
    geometry.add_argument("--short-side", type=int, default=None, help="resize so the shorter side is N pixels")
    geometry.add_argument("--size", type=parse_size, default=None, help="resize to exactly WxH")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of (re-)encoded frames (default 90)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="re-convert every video (needed when the size/fps/quality options changed)")
    p.add_argument("--max-failed", type=parse_percent, default=1.0,
                   help="exit 1 when more than this percentage of the videos failed (default 1%%)")
    p.add_argument("--strict", dest="max_failed", action="store_const", const=0.0,
                   help="exit 1 if any input failed (= --max-failed 0)")


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    """Video-decoding options shared by ``data.prep.convert videos`` and ``data.prep.prepare``."""
    p.add_argument("--fps", type=float, default=None, help="keep at most F frames per second (never duplicates)")
    p.add_argument("--decoder", choices=DECODERS, default=DEFAULT_DECODER,
                   help=f"video decoder (default {DEFAULT_DECODER}, measured fastest)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m data.convert", description=plain_help(__doc__),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="kind", required=True)
    for kind, help_ in (("videos", "SRC/<class>/<id>.{mp4,avi,mkv,webm,mov,...} → frame databases"),
                        ("frames", "SRC/<class>/<id>/frame_XXXXX.{jpg,png} → frame databases")):
        p = sub.add_parser(kind, help=help_)
        p.add_argument("src", type=Path, help="input root with one folder per class")
        p.add_argument("dst", type=Path, help="output data set folder (frames go to DST/jpg/<class>/<id>/)")
        add_output_arguments(p)
        if kind == "videos":
            add_video_arguments(p)
            p.add_argument("--csv", type=Path, nargs="+", action="extend", default=[],
                           help="convert only the videos of these label CSVs (SRC/<label>/<id>.* or SRC/<id>.*)")
            p.add_argument("--timeslices", action="store_true",
                           help="with --csv: cut [time_start, time_end) into <id>_<start:06d>_<end:06d>")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_sigterm():
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    if not args.src.is_dir():
        log.error("%s: input folder not found", args.src)
        return EXIT_USAGE
    skipped: Counter | None = None
    if args.kind == "videos":
        if args.timeslices and not args.csv:
            log.error("--timeslices needs --csv LABELS.csv (the time_start/time_end columns)")
            return EXIT_USAGE
        opts = Options(args.quality, args.short_side, args.size, args.fps, args.decoder)
        try:
            jobs, missing, index = video_jobs(args.src, args.dst, args.csv, args.timeslices)
        except (ValueError, FileNotFoundError) as exc:
            log.error("%s", exc)
            return EXIT_USAGE
        report_missing(missing, args.src)
        skipped = index.skipped
    else:
        opts, jobs = Options(args.quality, args.short_side, args.size), frame_jobs(args.src, args.dst)
    if not jobs:
        log.error("%s: nothing to convert (expected %s)", args.src, "SRC/<class>/<id>.mp4" if args.kind == "videos"
                  else "SRC/<class>/<id>/frame_00001.jpg")
        return EXIT_USAGE
    return execute(jobs, opts, args.kind, args.dst, args.workers, args.overwrite, args.max_failed, skipped)


if __name__ == "__main__":
    sys.exit(main())
