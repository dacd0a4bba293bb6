"""Clip loading speed: SQLite frame stores vs JPEG folders vs video files vs the in-memory decode bound.

    python -m benchmarks.bench_loader [--videos 16] [--frames 64] [--sizes 256] [--clips 48]
                                      [--shapes 8x112,16x112,16x224] [--workers 2] [--interval 2]
                                      [--policy small] [--crop N] [--only a,e,d] [--smoke] [--out DIR]

Generates one synthetic set (``data.prep.synthetic``: frames.db + the same clips as H.264 .mp4) and dumps the very same
JPEG bytes as ``frame_%05d.jpg`` folders, then loads the same random clips (same sampler seed) with:
(a) ``VideoIter`` (one SQLite query per clip), (b) JPEG files (``cv2.imread`` per frame), (c) the .mp4 files
(PyAV: seek to the clip, decode forward), (d) the decode bound: ``cv2.imdecode`` of the JPEG bytes already in
memory, at full size, (e) ``VideoIter`` with reduced-size decoding (``cv2.IMREAD_REDUCED_COLOR_k``, ``k`` chosen
per clip from the transform's ``min_input_side``; the header line of each column gives ``k``). Every method ends
with the same eval transform (``--policy``, ``--crop``: the nominal crop of multigrid's smaller shapes), so the
ratios isolate the storage and the decoding. Each stored frame side in ``--sizes`` (square frames) gets its
own generated set and columns. Reports, in the main process and with ``--workers`` DataLoader workers, wall-clock
clips/s and clips per CPU-second (main process + workers; robust to other jobs on a shared machine), best of
``--rounds`` interleaved rounds, and the ratio to (d). Files are in the page cache (warm reads) unless
``--cold``, which evicts our files from it (``posix_fadvise DONTNEED``) before each measurement. A last table
gives the frames/s of the converter's two decoders (PyAV, OpenCV) over one whole generated video
(``--decode-size``, ``--decode-frames``, ``--decode-ext``), best of ``--rounds``.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import Table, add_report_arguments, parse_with_smoke, torch_threads, write_report
from data.catalog.labels import load_records
from data.pipeline.video_iterator import VideoIter
from data.pipeline.video_sampler import RandomSampling
from data.pipeline.video_transforms import build_transform
from data.prep.synthetic import generate
from data.store.frame_decoder import choose_reduce
from data.store.frames_db import DB_NAME, decode_jpeg
from data.store.video_io import DECODERS, iter_frames, write_video_file
from network.config import get_config

SMOKE = ["--videos", "2", "--frames", "16", "--sizes", "48", "--clips", "4", "--shapes", "4x32", "--workers", "0",
         "--rounds", "1", "--decode-size", "64x48", "--decode-frames", "16"]


class _ClipSet(Dataset):
    """Shared parts of (b)-(d): records, the same sampler draws and transform as VideoIter."""

    def __init__(self, records, size: tuple[int, int, int], interval: int, transform):
        self.records, self.size, self.transform = records, size, transform
        self.sampler = RandomSampling(size[0], interval, seed=0)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rec = self.records[i]
        indices = self.sampler.sampling(rec.n_frames, v_id=rec.index, num=self.size[0])
        return self.transform(self.frames(rec, indices), self.size), rec.class_index

    def frames(self, rec, indices: list[int]) -> np.ndarray:
        raise NotImplementedError


class MemorySet(_ClipSet):
    """(d) decode bound: JPEG bytes preloaded in RAM, decoded with cv2.imdecode."""

    def __init__(self, records, size, interval, transform):
        super().__init__(records, size, interval, transform)
        self.blobs = {}
        for rec in records:
            con = sqlite3.connect(Path(rec.path) / DB_NAME)
            self.blobs[rec.path] = [b for (b,) in con.execute("SELECT frames FROM Images ORDER BY ObjId")]
            con.close()

    def frames(self, rec, indices):
        decoded = {i: decode_jpeg(self.blobs[rec.path][i]) for i in set(indices)}
        return np.stack([decoded[i] for i in indices])


class JpegFilesSet(_ClipSet):
    """(b) the same JPEG bytes as one file per frame (``<dir>/<class>/<id>/frame_%05d.jpg``)."""

    def __init__(self, records, size, interval, transform, jpg_root: Path, src_root: Path):
        super().__init__(records, size, interval, transform)
        self.dirs = {rec.path: jpg_root / Path(rec.path).relative_to(src_root) for rec in records}

    def frames(self, rec, indices):
        folder = self.dirs[rec.path]
        decoded = {i: cv2.imread(str(folder / f"frame_{i + 1:05d}.jpg"), cv2.IMREAD_COLOR) for i in set(indices)}
        return np.stack([decoded[i] for i in indices])


class VideoFileSet(_ClipSet):
    """(c) the source .mp4: PyAV seek to the first needed frame's keyframe, decode forward to the last."""

    def __init__(self, records, size, interval, transform, video_root: Path, src_root: Path):
        super().__init__(records, size, interval, transform)
        self.files = {rec.path: (video_root / Path(rec.path).relative_to(src_root)).with_suffix(".mp4")
                      for rec in records}

    def frames(self, rec, indices):
        wanted, got = set(indices), {}
        with av.open(str(self.files[rec.path])) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate)
            container.seek(int(min(indices) / rate / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                i = round(float(frame.pts * stream.time_base) * rate)
                if i in wanted:
                    got[i] = frame.to_ndarray(format="bgr24")
                if i >= max(indices):
                    break
        return np.stack([got[i] for i in indices])


def evict(root: Path) -> None:
    """Drop ``root``'s files (only ours) from the page cache, so the next reads come from the disk."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cpu_seconds() -> float:
    """CPU time of this process plus its finished (joined) children, e.g. DataLoader workers."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(dataset: Dataset, clips: int, workers: int) -> tuple[float, float]:
    """(wall-clock clips/s, clips per CPU-second) over ``clips`` clips (indices cycling over the videos).

    Wall clock excludes the first clips (warm-up, worker start); CPU time counts every clip including worker
    start-up, summed over the main process and the workers, so it does not depend on other jobs' load.
    """
    order = [i % len(dataset) for i in range(clips + 2 * max(workers, 1))]
    warm = 2 * max(workers, 1)
    if workers == 0:
        for i in order[:warm]:
            dataset[i]
        t0, c0 = time.perf_counter(), cpu_seconds()
        for i in order[warm:]:
            dataset[i]
        return clips / (time.perf_counter() - t0), clips / (cpu_seconds() - c0)
    c0 = cpu_seconds()
    loader = DataLoader(dataset, batch_size=None, sampler=order, num_workers=workers, prefetch_factor=4,
                        generator=torch.Generator().manual_seed(0))  # same worker seeds -> same clips per method
    it = iter(loader)
    for _ in range(warm):
        next(it)
    t0 = time.perf_counter()
    n = sum(1 for _ in it)  # exhausting the iterator joins the workers, so their CPU time is counted
    wall = n / (time.perf_counter() - t0)
    del it, loader
    return wall, len(order) / (cpu_seconds() - c0)


def make_sets(records, size, interval, transform, tmp: Path, jpg_dir: Path, only: str) -> dict[str, Dataset]:
    """The methods named by their letters in ``only``, on the same records, sampler draws and transform."""
    def video_iter(reduced: bool) -> VideoIter:
        return VideoIter(records, size, RandomSampling(size[0], interval, seed=0), transform, reduced_decode=reduced)

    builders = {
        "a": ("(a) SQLite VideoIter", lambda: video_iter(False)),
        "b": ("(b) JPEG files", lambda: JpegFilesSet(records, size, interval, transform, tmp / "jpgfiles", jpg_dir)),
        "c": ("(c) video files (PyAV)", lambda: VideoFileSet(records, size, interval, transform, tmp / "videos",
                                                             jpg_dir)),
        "d": ("(d) decode bound (RAM)", lambda: MemorySet(records, size, interval, transform)),
        "e": ("(e) VideoIter, reduced decode", lambda: video_iter(True)),
    }
    return {builders[k][0]: builders[k][1]() for k in builders if k in only}


def generate_set(tmp: Path, args: argparse.Namespace, side: int):
    """A synthetic set of ``side`` x ``side`` frames (+ .mp4 files and JPEG folders); returns its records."""
    classes = min(8, args.videos)
    paths = generate(tmp / "set", num_classes=classes, videos_per_class=max(1, args.videos // classes),
                     frames=args.frames, size=side, val_fraction=0.0, videos_dir=tmp / "videos")
    records, _ = load_records(paths.train_csv, paths.jpg_dir, False, save_dictionary=False)
    for rec in records:  # (b): the same JPEG bytes as files
        folder = tmp / "jpgfiles" / Path(rec.path).relative_to(paths.jpg_dir)
        folder.mkdir(parents=True)
        con = sqlite3.connect(Path(rec.path) / DB_NAME)
        for obj_id, blob in con.execute("SELECT ObjId, frames FROM Images"):
            (folder / f"{obj_id.split('/')[-1]}.jpg").write_bytes(blob)
        con.close()
    return records, paths.jpg_dir


def moving_frames(n: int, width: int, height: int, seed: int = 0):
    """Textured frames with a moving disc, so the encoder has real motion and detail to code."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8), (width, height))
    for i in range(n):
        img = bg.copy()
        cv2.circle(img, ((i * 3) % width, height // 2), height // 6, (40, 200, 250), -1)
        yield img


def decoder_table(size: str, frames: int, ext: str, repeats: int) -> Table:
    """Frames/s of each converter decoder over one generated video (best of ``repeats``), against PyAV."""
    width, height = (int(v) for v in size.lower().split("x"))
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench{ext}"
        write_video_file(path, moving_frames(frames, width, height), fps=25)
        for decoder in DECODERS:
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                n = sum(1 for _ in iter_frames(path, decoder=decoder))
                best = min(best, time.perf_counter() - t0)
            rates[decoder] = n / best
    table = Table(f"converter decoders: {frames} frames {width}x{height} {ext}, best of {repeats}",
                  ["decoder", "frames/s", "vs pyav"], formats=[None, "{:.0f}", "{:.2f}x"])
    for decoder, rate in rates.items():
        table.add(decoder, rate, rate / rates["pyav"])
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=16, help="videos in the generated set")
    ap.add_argument("--frames", type=int, default=64, help="frames per video")
    ap.add_argument("--sizes", "--size", default="256", help="comma-separated stored frame sides (pixels, square)")
    ap.add_argument("--clips", type=int, default=48, help="timed clips per measurement")
    ap.add_argument("--shapes", default="8x112,16x112,16x224", help="comma-separated TxS clip shapes")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the parallel column (0: skip)")
    ap.add_argument("--interval", type=int, default=2, help="frame interval of the sampler")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement; the best is kept")
    ap.add_argument("--cold", action="store_true", help="evict the files from the page cache before each measurement")
    ap.add_argument("--policy", default="small", help="geometry policy of the eval transform (small, large, none)")
    ap.add_argument("--crop", type=int, default=None, help="nominal crop size (multigrid; default: the clip size)")
    ap.add_argument("--only", default="abcde", help="letters of the methods to run (default all)")
    ap.add_argument("--decode-size", default="320x240", help="W x H of the video the decoders read")
    ap.add_argument("--decode-frames", type=int, default=250, help="frames of the video the decoders read")
    ap.add_argument("--decode-ext", default=".mp4", help="its container/codec by extension: .mp4 .avi .mkv .webm")
    add_report_arguments(ap, "2 videos of 16 frames at 48², clips of 4x32², main process only (the test suite)")
    return parse_with_smoke(ap, argv, SMOKE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with torch_threads(1):
        tables = loader_tables(args)
        tables.append(decoder_table(args.decode_size, args.decode_frames, args.decode_ext, args.rounds))
        write_report("bench_loader", tables, args.out, argv, args.smoke)
    return 0


def loader_tables(args: argparse.Namespace) -> list[Table]:
    """The wall-clock and per-CPU-second tables of every method, stored size, clip shape and worker count."""
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(",")]
    cfg = get_config()
    transform = build_transform(args.policy, False, cfg["mean"], cfg["std"], crop_size=args.crop)
    wall_rows: dict[str, list[float]] = {}
    cpu_rows: dict[str, list[float]] = {}
    header = []
    notes = []
    for side in (int(v) for v in args.sizes.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
        try:
            t0 = time.perf_counter()
            records, jpg_dir = generate_set(tmp, args, side)
            notes.append(f"{len(records)} videos x {args.frames} frames of {side}x{side}, interval {args.interval}, "
                         f"{args.clips} clips per measurement, {transform} (generated in "
                         f"{time.perf_counter() - t0:.1f} s)")
            for t, s in shapes:
                size = (t, s, s)
                sets = make_sets(records, size, args.interval, transform, tmp, jpg_dir, args.only)
                first = {name: ds[0][0] for name, ds in sets.items()}
                exact = [c for name, c in first.items() if name[1] in "abd"]
                if not all(torch.equal(exact[0], c) for c in exact):
                    raise SystemExit(f"error: the methods disagree on the pixels of the first {t}x{s} clip")
                k = 1
                if "(e) VideoIter, reduced decode" in sets:
                    k = choose_reduce(side, transform.min_input_side(size))
                for workers in [0] + ([args.workers] if args.workers else []):
                    header.append(f"{side}px {t}x{s} k={k} w{workers}")
                    wall, cpu = dict.fromkeys(sets, 0.0), dict.fromkeys(sets, 0.0)
                    for _ in range(args.rounds):  # interleaved, so load from other jobs hits every method alike
                        for name, ds in sets.items():
                            if args.cold:
                                evict(tmp)
                            w, c = measure(ds, args.clips, workers)
                            wall[name], cpu[name] = max(wall[name], w), max(cpu[name], c)
                    for name in sets:
                        wall_rows.setdefault(name, []).append(wall[name])
                        cpu_rows.setdefault(name, []).append(cpu[name])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    base = "(d) decode bound (RAM)"
    tables = []
    for title, rows in (("wall-clock clips/s", wall_rows), ("clips per CPU-second", cpu_rows)):
        bound = rows.get(base)
        table = Table(title + ("; ratio to the full-decode bound (d)" if bound else "")
                      + "; k = reduction of (e); w0 = main process, wN = N DataLoader workers",
                      ["method", *header, *([f"{h} ratio" for h in header] if bound else [])],
                      formats=[None, *["{:.1f}"] * len(header), *["{:.2f}"] * len(header)], note="; ".join(notes))
        for name, rates in rows.items():
            table.add(name, *rates, *([r / b for r, b in zip(rates, bound)] if bound else []))
        tables.append(table)
    return tables


if __name__ == "__main__":
    sys.exit(main())
