"""One command from an official download to a ready data set: frames, label CSVs, class dictionary, check.

    python -m data.prepare NAME --videos SRC --annotations ANN --out ROOT [--split N] [--variant V]
                           [--val-fraction F] [--workers N] [--short-side N | --size WxH] [--fps F] ...

NAME is the annotation format (one of the choices below). Writes
``ROOT/data/<folder>/jpg/<label>/<id>/frames.db`` + ``n_frames`` (flat
video folders are regrouped by class), ``ROOT/labels/<train csv>`` and ``<val csv>`` (``label,id,[time_start,
time_end,]split``, only rows whose video was found), and ``ROOT/labels/<prefix>dictionary.json`` in the data
set's official class order, then runs ``data.prep.check``. After that ``--dataset ROOT`` works for the matching
training script. The CSVs list only videos that were stored: rows whose video failed to convert are left out
and listed in ``ROOT/data/<folder>/failed_videos.txt`` (``<label>/<id>``, the file, the reason).

It also writes ``ROOT/data/<folder>/videos.json`` (`data.catalog.video_sources`: each video's file, cut and frame
count under these ``--fps``/``--short-side``/``--size``), so training can read the files with ``--source video``.
``--no-convert`` writes only the CSVs, the dictionary and that list: no frames, no check.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data.catalog.datasets import get_dataset
from data.catalog.labels import dictionary_path, iter_rows
from data.prep import check, convert
from data.prep.annotations import PARSERS, Annotations, Entry, ParseArgs
from data.prep.help_text import plain_help
from data.prep.parallel import exit_on_sigterm
from data.prep.video_list import write_video_list
from data.store.atomic import atomic_write_text
from data.store.frames_db import is_complete
from data.store.video_clips import FrameOptions
from data.store.video_io import is_video_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Facts:
    """Where a prepared data set goes: frame folder and label CSV names (``{split}``/``{variant}`` filled in)."""

    folder: str
    train_csv: str
    val_csv: str
    timeslices: bool = False


def _registered(key: str) -> Facts:
    """The folder and CSV names that ``key``'s training script reads, from the data-set registry, with the
    split number and the Kinetics variant as ``{split}``/``{variant}`` fields."""
    spec = get_dataset(key)

    def template(name: str) -> str:
        name = re.sub(r"split1(?=_)", "split{split}", name)
        return name.replace(f"-{max(spec.variants)}_", "-{variant}_") if spec.variants else name

    return Facts(spec.folder, template(spec.train_csv), template(spec.val_csv), spec.timeslices)


# The names the train_<dataset>.py scripts read (data.catalog.datasets); ssv2 and folders are trained by train.py.
DATASETS: dict[str, Facts] = {
    **{name: _registered(key) for name, key in (("ucf101", "ucf101"), ("hmdb51", "hmdb51"), ("kinetics", "kinetics"),
                                                ("hacs", "hacs"), ("mit", "moments"), ("diving48", "diving48"))},
    "ssv2": Facts("ssv2_videos", "ssv2_train.csv", "ssv2_val.csv"),
    "folders": Facts("folders_videos", "folders_train.csv", "folders_val.csv"),
}


def index_videos(src: Path) -> dict[str, list[Path]]:
    """Every video file under ``src`` (any depth, extension in any case) by file stem."""
    index: dict[str, list[Path]] = {}
    for path in sorted(src.rglob("*")):
        if is_video_file(path) and not path.name.startswith("."):
            index.setdefault(path.stem, []).append(path)
    return index


def locate(entry: Entry, index: dict[str, list[Path]]) -> tuple[Path, bool] | None:
    """``(file, used whole)`` for ``entry``: a trimmed clip first, else the full video; a file in a folder
    named like the label wins over others of the same name. Several files that fit equally (``x.mp4`` and
    ``x.mkv``, or ``x.mp4`` in two folders not named like the label) are a ``ValueError`` naming them."""
    if entry.path is not None:
        return entry.path, True
    for stems, whole in ((entry.trimmed, True), (entry.stems, entry.start is None)):
        for stem in stems:
            hits = index.get(stem)
            if hits:
                best = [p for p in hits if p.parent.name == entry.label] or hits
                if len(best) > 1:
                    raise ValueError(f"{entry.source}: video '{stem}' of '{entry.label}' is found in {len(best)} "
                                     f"files ({', '.join(map(str, best[:3]))}); keep one of them")
                return best[0], whole
    return None


def csv_text(entries: Sequence[Entry], timeslices: bool) -> str:
    """The label CSV of ``entries`` (header ``label,id,[time_start,time_end,]split``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["label", "id", "time_start", "time_end", "split"] if timeslices else ["label", "id", "split"])
    for e in entries:
        times = [repr(float(e.start)), repr(float(e.end))] if timeslices else []  # exact round trip
        writer.writerow([e.label, e.video_id, *times, e.split])
    return buf.getvalue()


def write_labels(ann: Annotations, found: list[Entry], labels: Path, facts: Facts, names: tuple[str, str]
                 ) -> list[Path]:
    """Write the train/val CSVs and the dictionary (official class order); returns the CSV paths."""
    csvs = [labels / name for name in names]
    for path, split in zip(csvs, ("train", "val")):
        atomic_write_text(path, csv_text([e for e in found if e.split == split], facts.timeslices))
    atomic_write_text(dictionary_path(csvs[0]), json.dumps({c: i for i, c in enumerate(ann.classes)}, indent=1))
    return csvs


FAILED_NAME = "failed_videos.txt"


def build_jobs(csvs: Sequence[Path], found: dict[tuple, tuple[Path, bool]], jpg: Path, timeslices: bool,
               folders: dict[tuple, Path] | None = None) -> list[convert.Job]:
    """Jobs read back from the written CSVs, so the folder names are exactly those the loaders compute;
    ``folders`` receives each entry's output folder."""
    jobs: dict[Path, convert.Job] = {}
    for row in (r for path in csvs for r in iter_rows(path, timeslices)):
        key = (row.label, row.video_id, row.start, row.end)
        src, whole = found[key]
        if folders is not None:
            folders[key] = jpg / row.rel_path
        job = convert.Job(src, jpg / row.rel_path, None if whole else row.start, None if whole else row.end)
        if jobs.setdefault(job.dst, job) != job:  # never two sources in one stored video
            raise ValueError(f"{row.source}: {jobs[job.dst].src} and {src} would both be stored as {job.dst}; "
                             "rename one of them (or remove the duplicate annotation)")
    return list(jobs.values())


def prepare(args: argparse.Namespace) -> int:
    """Run the whole preparation; returns the exit code."""
    facts = DATASETS[args.name]
    variant = args.variant or 700
    names = (facts.train_csv.format(split=args.split, variant=variant),
             facts.val_csv.format(split=args.split, variant=variant))
    if not args.videos.is_dir():
        log.error("--videos %s: folder not found", args.videos)
        return convert.EXIT_USAGE
    try:
        ann = PARSERS[args.name](ParseArgs(args.annotations, args.videos, args.split, variant, args.val_fraction))
    except (ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return convert.EXIT_USAGE
    classes = set(ann.classes)
    unknown = next((e for e in ann.entries if e.label not in classes), None)
    if unknown is not None:
        log.error("%s: label '%s' is not one of the %d classes of the annotations", unknown.source, unknown.label,
                  len(classes))
        return convert.EXIT_USAGE
    if args.name == "kinetics" and len(ann.classes) != variant:
        log.warning("Kinetics-%d annotations list %d classes; check --variant", variant, len(ann.classes))
    index = index_videos(args.videos)
    found: dict[tuple, tuple[Path, bool]] = {}
    kept, missing = [], []
    for entry in ann.entries:
        try:
            hit = locate(entry, index)
        except ValueError as exc:
            log.error("%s", exc)
            return convert.EXIT_USAGE
        if hit is None:
            missing.append(f"{entry.source} ({entry.label}/{entry.video_id})")
            continue
        key = (entry.label, entry.video_id, entry.start, entry.end)
        if found.setdefault(key, hit)[0] != hit[0]:
            log.error("%s: %s and %s are both video '%s' of '%s'; rename one of them", entry.source, found[key][0],
                      hit[0], entry.video_id, entry.label)
            return convert.EXIT_USAGE
        kept.append(entry)
    convert.report_missing(missing, args.videos)
    if not kept:
        log.error("%s: none of the %d annotated videos found (expected files like %s.mp4 below it)", args.videos,
                  len(ann.entries), ann.entries[0].video_id if ann.entries else "<id>")
        return convert.EXIT_USAGE
    dst = args.out / "data" / facts.folder
    folders: dict[tuple, Path] = {}
    try:
        csvs = write_labels(ann, kept, args.out / "labels", facts, names)
        jobs = build_jobs(csvs, found, dst / "jpg", facts.timeslices, folders)
    except ValueError as exc:
        log.error("%s", exc)
        return convert.EXIT_USAGE
    log.info("%s: %d classes, %d train and %d val videos → %s", args.name, len(ann.classes),
             sum(e.split == "train" for e in kept), sum(e.split == "val" for e in kept), dst)
    frame_options = FrameOptions(args.fps, args.short_side, args.size)
    if args.no_convert:  # --source video decodes the files themselves: no frame store to write or check
        code, unreadable = write_video_list(jobs, dst, args.videos, frame_options, args.workers, args.max_failed)
        drop_failed(ann, kept, found, folders, unreadable, args.out / "labels", facts, names, dst,
                    stored=lambda folder: folder not in unreadable)
        return code
    opts = convert.Options(args.quality, args.short_side, args.size, args.fps, args.decoder)
    code, summary = convert.convert_jobs(jobs, opts, "videos", dst, args.workers, args.overwrite, args.max_failed)
    if code == convert.EXIT_FATAL or code == convert.EXIT_USAGE:
        return code
    drop_failed(ann, kept, found, folders, summary.failed if summary else {}, args.out / "labels", facts, names, dst)
    broken, _, n = check.run_check(dst, csvs, facts.timeslices, quick=True, workers=args.workers)
    for line in broken:
        log.warning("BROKEN %s", line)
    log.info("checked %d videos: %d broken. Labels in %s", n, len(broken), args.out / "labels")
    listed, _ = write_video_list(jobs, dst, args.videos, frame_options, args.workers, args.max_failed,
                                 check_store=True)
    return code or listed or (1 if broken else 0)


def _key(e: Entry) -> tuple:
    return (e.label, e.video_id, e.start, e.end)


def drop_failed(ann: Annotations, kept: list[Entry], found: dict[tuple, tuple[Path, bool]],
                folders: dict[tuple, Path], failed: dict[Path, str], labels: Path, facts: Facts,
                names: tuple[str, str], dst: Path, stored: Callable[[Path], bool] = is_complete) -> None:
    """Rewrite the CSVs without the rows whose video is not ``stored`` (default: its frame store is complete;
    with ``--no-convert``: its file could be read), and list those in ``dst/failed_videos.txt`` (removed when
    every video is stored)."""
    report = dst / FAILED_NAME
    lost = [e for e in kept if not stored(folders[_key(e)])]
    if not lost:
        report.unlink(missing_ok=True)
        return
    gone = {_key(e) for e in lost}
    write_labels(ann, [e for e in kept if _key(e) not in gone], labels, facts, names)
    lines = [f"{e.label}/{folders[_key(e)].name}\t{found[_key(e)][0]}\t"
             f"{failed.get(folders[_key(e)], 'not stored')}" for e in lost]
    atomic_write_text(report, "label/id\tfile\treason\n" + "\n".join(lines) + "\n")
    log.warning("left %d rows out of the label CSVs (their videos were not stored); listed in %s", len(lost), report)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m data.prepare", description=plain_help(__doc__),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=sorted(DATASETS), help="annotation format of the data set")
    ap.add_argument("--videos", type=Path, required=True, help="folder holding the downloaded videos (any layout)")
    ap.add_argument("--annotations", type=Path, default=None,
                    help="folder holding the official annotation files (not needed for 'folders')")
    ap.add_argument("--out", type=Path, required=True, help="data set root to write (ROOT/data/..., ROOT/labels/)")
    ap.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="UCF-101 / HMDB-51 split (default 1)")
    ap.add_argument("--variant", type=int, default=None, choices=(200, 400, 600, 700),
                    help="Kinetics variant, names the CSVs kinetics-V_{train,val}.csv (default 700)")
    ap.add_argument("--val-fraction", type=float, default=0.2,
                    help="'folders' without a val/ subtree: share of each class held out (default 0.2)")
    ap.add_argument("--no-convert", action="store_true",
                    help="write only the label CSVs, the class dictionary and ROOT/data/<folder>/videos.json (the "
                    "video files, cuts and frame counts) for training with --source video; no frames are stored")
    convert.add_output_arguments(ap)
    convert.add_video_arguments(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with exit_on_sigterm():
        return prepare(args)


if __name__ == "__main__":
    sys.exit(main())
