"""Clip read cost against video length: the original's ObjId query against the verified rowid read, in one run.

    python -m benchmarks.bench_reads [--lengths 300,3000,30000] [--clip 16] [--size 64x48] [--cold-reps 9]
                                     [--warm-reps 30] [--smoke] [--out DIR]

For each length it writes four ``frames.db`` files with the same JPEG blobs (``--size`` textured frames, a few
KB each; a real 256-pixel frame is 10-40 KB, so the scans below are cheaper than on real data):
``original``: the original's layout, rows in frame order, no index; ``ours``: `data.store.frames_db.write_video`
(rows in order + ObjId index); ``reordered+index``: rows in a shuffled order (as the original's converter
could insert them), then indexed with `data.prep.index_db`, so every rowid misses and the indexed fallback runs.
It times reading one ``--clip``-frame clip (interval 2, random start): the old query on ``original`` against
the new read (`data.store.frames_db.read_unique_blobs`) on each file. ``warm``: reused connection, file in the page
cache. ``cold``: a new read-only connection, and the file evicted from the page cache with
``posix_fadvise(DONTNEED)`` first (only our files; the machine's other caches, e.g. the disk's, stay; dropping
all caches needs root).
Methods are interleaved; medians per cell; ratios old / new.
"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.bench_loader import evict
from benchmarks.common import Table, add_report_arguments, parse_with_smoke, write_report
from data.prep.index_db import index_database
from data.store.frames_db import (
    DB_NAME,
    TABLE_SQL,
    connect_readonly,
    encode_jpeg,
    frame_id,
    query_by_objid,
    read_unique_blobs,
    write_video,
)

OLD = "old query, original"
SMOKE = ["--lengths", "40", "--clip", "4", "--cold-reps", "1", "--warm-reps", "2"]


def textured_blobs(count: int, width: int, height: int) -> list[bytes]:
    """``count`` distinct JPEGs of textured noise (the blobs are cycled over the frames of a video)."""
    rng = np.random.default_rng(0)
    return [encode_jpeg(cv2.resize(rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8),
                                   (width, height)), 90) for _ in range(count)]


def write_layout(video: Path, n: int, blobs: list[bytes], order: list[int] | None) -> None:
    """The original's table with frames inserted in ``order`` (default: frame order), without an index."""
    video.mkdir(parents=True)
    con = sqlite3.connect(video / DB_NAME)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute(TABLE_SQL)
    con.executemany("INSERT INTO Images VALUES (?, ?, ?)",
                    ((frame_id(video, i), blobs[i % len(blobs)], 0) for i in (order or range(n))))
    con.commit()
    con.close()


def make_videos(root: Path, n: int, blobs: list[bytes]) -> dict[str, Path]:
    videos = {"original": root / f"original_{n}", "ours": root / f"ours_{n}", "reordered+index": root / f"reord_{n}"}
    write_layout(videos["original"], n, blobs, None)
    write_video(videos["ours"], (blobs[i % len(blobs)] for i in range(n)))
    write_layout(videos["reordered+index"], n, blobs, [int(i) for i in np.random.default_rng(1).permutation(n)])
    index_database(videos["reordered+index"] / DB_NAME)
    return videos


def load_into_cache(video: Path) -> None:
    """Read the whole file once, so warm reads of every layout find it in the page cache."""
    with open(video / DB_NAME, "rb") as fh:
        while fh.read(1 << 24):
            pass


def old_read(con: sqlite3.Connection, video: Path, indices: list[int]) -> None:
    names = [frame_id(video, i) for i in indices]
    rows = query_by_objid(con, names)
    assert len(rows) == len(set(names))


def new_read(con: sqlite3.Connection, video: Path, indices: list[int]) -> None:
    blobs, _ = read_unique_blobs(con, video, indices)
    assert len(blobs) == len(set(indices))


def time_read(read: Callable, video: Path, indices: list[int], cold: bool,
              cons: dict[Path, sqlite3.Connection]) -> float:
    """Seconds for one clip read; cold: evict the file and open a new connection (inside the timing)."""
    if cold:
        evict(video)
        t0 = time.perf_counter()
        con = connect_readonly(video / DB_NAME)
        read(con, video, indices)
        elapsed = time.perf_counter() - t0
        con.close()
        return elapsed
    if video not in cons:
        cons[video] = connect_readonly(video / DB_NAME)
        read(cons[video], video, indices)  # the first query on a connection also reads the schema
    con = cons[video]
    t0 = time.perf_counter()
    read(con, video, indices)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="300,3000,30000", help="comma-separated video lengths (frames)")
    ap.add_argument("--clip", type=int, default=16, help="frames per clip (interval 2)")
    ap.add_argument("--size", default="64x48", help="W x H of the stored frames")
    ap.add_argument("--cold-reps", type=int, default=9, help="cold reads per method and length (median)")
    ap.add_argument("--warm-reps", type=int, default=30, help="warm reads per method and length (median)")
    add_report_arguments(ap, "one 40-frame video, clips of 4 frames, 1 cold and 2 warm reads (the test suite)")
    args = parse_with_smoke(ap, argv, SMOKE)
    width, height = (int(v) for v in args.size.lower().split("x"))
    blobs = textured_blobs(64, width, height)
    tmp = Path(tempfile.mkdtemp(prefix="bench_reads_"))
    rng = np.random.default_rng(0)
    methods = {OLD: ("original", old_read), "new, original": ("original", new_read),
               "new, ours": ("ours", new_read), "new, reordered+index": ("reordered+index", new_read)}
    results: dict[tuple[str, int, str], float] = {}
    try:
        for n in (int(v) for v in args.lengths.split(",")):
            videos = make_videos(tmp, n, blobs)
            cons: dict[Path, sqlite3.Connection] = {}
            for mode, reps in (("cold", args.cold_reps), ("warm", args.warm_reps)):
                if mode == "warm":
                    for video in videos.values():
                        load_into_cache(video)
                times: dict[str, list[float]] = {m: [] for m in methods}
                for _ in range(reps):
                    start = int(rng.integers(max(1, n - 2 * args.clip)))
                    indices = [min(n - 1, start + 2 * i) for i in range(args.clip)]
                    for name, (layout, read) in methods.items():  # interleaved: load hits every method alike
                        times[name].append(time_read(read, videos[layout], indices, mode == "cold", cons))
                for name in methods:
                    results[(name, n, mode)] = statistics.median(times[name])
            for con in cons.values():
                con.close()
            for video in videos.values():
                shutil.rmtree(video)
        lengths = sorted({n for _, n, _ in results})
        cols = [(n, mode) for mode in ("cold", "warm") for n in lengths]
        table = Table(f"ms per clip read, frames {width}x{height} ({np.mean([len(b) for b in blobs]) / 1024:.1f} KB "
                      f"per JPEG), clip of {args.clip} frames (interval 2); medians of {args.cold_reps} cold / "
                      f"{args.warm_reps} warm reads; ratio old query / this method",
                      ["method", *(f"{m} {n} ms" for n, m in cols), *(f"{m} {n} ratio" for n, m in cols)],
                      formats=[None, *["{:.2f}"] * len(cols), *["{:.1f}x"] * len(cols)])
        for name in methods:
            table.add(name, *(results[(name, n, m)] * 1e3 for n, m in cols),
                      *(results[(OLD, n, m)] / results[(name, n, m)] for n, m in cols))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_report("bench_reads", [table], args.out, argv, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
