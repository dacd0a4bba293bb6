"""Clips per CPU-second and disk of the two training sources (``--source store|video``) on the same videos, in one run.

    python -m benchmarks.bench_sources [--videos 10] [--seconds 10] [--size 320x240] [--fps 25] [--gop 0]
                                       [--clip-length 16] [--interval 2] [--clip-size 224] [--clips 20]
                                       [--repeats 5] [--smoke] [--out DIR]

Writes ``--videos`` H.264 mp4 files (PyAV, crf 23, ``--gop`` frames between keyframes, 0: x264's default of
250) of moving shapes over a panning texture with light noise (`frames`), prepares them with ``python -m data.prepare
folders`` (frames stored as JPEG quality 90 at the videos' size, and ``videos.json``), then reads the same
``--clips`` random training windows per round from each source, the rounds interleaved (`benchmarks.common.rounds`),
on one thread (as one DataLoader worker): ``decode`` is the frames only (`data.store.frames_db.read_frames`
against `data.store.video_clips.read_clip`), ``clip`` adds the training transform (scale jitter, crop to
``--clip-size``, flip) as `VideoIter`/`VideoFiles` return it. Figures are process CPU seconds (median of the
rounds). Disk is the bytes of the mp4 files against the ``frames.db`` files.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.common import (
    Table,
    add_report_arguments,
    medians,
    parse_with_smoke,
    rounds,
    timed,
    torch_threads,
    write_report,
)
from data.catalog.labels import load_records
from data.catalog.spec import manifest_path
from data.catalog.video_sources import read_sources
from data.pipeline.video_files import VideoFiles
from data.pipeline.video_iterator import VideoIter
from data.pipeline.video_sampler import RandomSampling
from data.pipeline.video_transforms import build_transform
from data.prep import prepare
from data.prep.convert import parse_size
from data.store.frames_db import read_frames
from data.store.video_clips import read_clip

SMOKE = ["--videos", "2", "--seconds", "1", "--size", "64x48", "--clip-length", "4", "--clip-size", "32",
         "--clips", "2", "--repeats", "1"]
FOLDER = prepare.DATASETS["folders"].folder


def frames(seconds: float, fps: int, width: int, height: int, seed: int):
    """BGR frames: a smooth random texture panning ~1 px per frame (camera motion), three discs moving over it, and
    noise of +-3 grey levels; H.264 at crf 23 codes 320x240 of it at ~400 kbit/s, a web video's detail."""
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 256, (height // 2, width // 2, 3), dtype=np.uint8), (2 * width, 2 * height),
                         interpolation=cv2.INTER_CUBIC).astype(np.int16)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    centres, speeds = rng.uniform(0, 1, (3, 2)) * (width, height), rng.uniform(-4, 4, (3, 2))
    colours, pan = rng.integers(0, 256, (3, 3)), rng.uniform(-1.5, 1.5, 2)
    for i in range(int(seconds * fps)):
        ox, oy = int(width / 2 + pan[0] * i) % width, int(height / 2 + pan[1] * i) % height
        img = texture[oy:oy + height, ox:ox + width].copy()
        for c, v, col in zip(centres, speeds, colours):
            cx, cy = (c + v * i) % (width, height)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < (height / 8) ** 2] = col
        img += rng.integers(-3, 4, img.shape, dtype=np.int16)
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_mp4(path: Path, seconds: float, fps: int, size: tuple[int, int], gop: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt, (stream.width, stream.height) = "yuv420p", size
        stream.options = {"crf": "23", "preset": "veryfast", **({"g": str(gop)} if gop else {})}
        for img in frames(seconds, fps, *size, seed):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        container.mux(stream.encode(None))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_sources", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=10, help="mp4 files to write (default 10)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each video (default 10 s)")
    p.add_argument("--size", type=parse_size, default=(320, 240), help="frame size WxH (default 320x240)")
    p.add_argument("--fps", type=int, default=25, help="frame rate of the videos (default 25)")
    p.add_argument("--gop", type=int, default=0, help="frames between keyframes (0: x264's default, 250)")
    p.add_argument("--clip-length", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--interval", type=int, default=2, help="frame interval of the clips (default 2)")
    p.add_argument("--clip-size", type=int, default=224, help="crop side of the training transform (default 224)")
    p.add_argument("--clips", type=int, default=20, help="clips read per source per round (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="measured rounds (default 5, after one warm-up round)")
    add_report_arguments(p, "2 one-second videos of 64x48, one round of 2 clips (checks that it runs)")
    return p


def _datasets(root: Path, args: argparse.Namespace) -> tuple[VideoIter, VideoFiles]:
    facts = prepare.DATASETS["folders"]
    labels, jpg = root / "labels", root / "data" / FOLDER / "jpg"
    sources = read_sources(manifest_path(jpg))
    store, _ = load_records(labels / facts.train_csv, jpg, False, save_dictionary=False)
    video, _ = load_records(labels / facts.train_csv, sources.videos, False, save_dictionary=False,
                            find=sources.find)
    size = (args.clip_length, args.clip_size, args.clip_size)
    made = []
    for cls, records, extra in ((VideoIter, store, {}), (VideoFiles, video, {"options": sources.options})):
        sampler = RandomSampling(num=args.clip_length, interval=args.interval, speed=(1.0, 1.0), seed=0)
        transform = build_transform("large", True, [0.0] * 3, [1.0] * 3, crop_size=args.clip_size)
        made.append(cls(records, size, sampler, transform, name=cls.__name__, **extra))
    return made[0], made[1]


def _cases(store: VideoIter, video: VideoFiles, args: argparse.Namespace) -> dict:
    """Each case reads ``--clips`` clips; the windows of a round are drawn from a seeded generator, the same for
    both sources."""
    n, k, step = len(store), args.clips, args.interval
    rng = {name: np.random.default_rng(1) for name in ("store decode", "video decode")}

    def windows(name: str) -> list[tuple[int, list[int]]]:
        out = []
        for _ in range(k):
            i = int(rng[name].integers(n))
            length = store.records[i].n_frames
            span = min(length, (args.clip_length - 1) * step + 1)
            start = int(rng[name].integers(length - span + 1))
            out.append((i, [min(start + j * step, length - 1) for j in range(args.clip_length)]))
        return out

    def decode_store() -> None:
        for i, idx in windows("store decode"):
            read_frames(store.records[i].path, idx)

    def decode_video() -> None:
        for i, idx in windows("video decode"):
            r = video.records[i]
            read_clip(r.path, idx, r.start, r.end, video.options)

    order = np.random.default_rng(2).integers(n, size=k)
    return {"store decode": timed(decode_store), "video decode": timed(decode_video),
            "store clip": timed(lambda: [store[int(i)] for i in order]),
            "video clip": timed(lambda: [video[int(i)] for i in order])}


def _bytes(paths) -> int:
    return sum(p.stat().st_size for p in paths)


def run(args: argparse.Namespace, work: Path) -> list[Table]:
    src = work / "videos"
    for v in range(args.videos):
        write_mp4(src / f"class{v % 2}" / f"video{v:03d}.mp4", args.seconds, args.fps, args.size, args.gop, v)
    root = work / "root"
    code = prepare.main(["folders", "--videos", str(src), "--out", str(root), "--val-fraction", "0.0"])
    logging.getLogger().setLevel(logging.WARNING)  # prepare's INFO lines stay, the datasets' do not
    if code != 0:
        raise RuntimeError(f"data.prepare folders failed with exit code {code}")
    store, video = _datasets(root, args)
    cv2.setNumThreads(1)
    with torch_threads(1):
        values = rounds(_cases(store, video, args), args.repeats, warmup=1)
    cpu = medians(values, "cpu")
    speed = Table("Clips per CPU-second (one thread)", ["source", "work", "clips / CPU-s", "CPU ms / clip",
                                                         "CPU x store"], formats=[None, None, "{:.1f}", "{:.2f}",
                                                                                     "{:.2f}"])
    for work_kind in ("decode", "clip"):
        s, v = cpu[f"store {work_kind}"], cpu[f"video {work_kind}"]
        speed.add("store", work_kind, args.clips / s, 1000 * s / args.clips, None)
        speed.add("video", work_kind, args.clips / v, 1000 * v / args.clips, v / s)
    mp4 = _bytes(src.rglob("*.mp4"))
    db = _bytes((root / "data" / FOLDER / "jpg").rglob("frames.db"))
    disk = Table("Disk of the same videos", ["source", "bytes", "MB", "x mp4"], formats=[None, None, "{:.1f}",
                                                                                         "{:.2f}"])
    disk.add("video (mp4)", mp4, mp4 / 1e6, 1.0)
    disk.add("store (frames.db, JPEG q90)", db, db / 1e6, db / mp4)
    return [speed, disk]


def main(argv: list[str] | None = None) -> int:
    args = parse_with_smoke(build_parser(), argv, SMOKE)
    work = Path(tempfile.mkdtemp(prefix="bench-sources-"))
    try:
        tables = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    w, h = args.size
    notes = [f"{args.videos} videos of {args.seconds:g} s at {w}x{h}, {args.fps} fps, H.264 crf 23, keyframe every "
             f"{args.gop or 250} frames; clips of {args.clip_length} frames at interval {args.interval}, random "
             f"windows, {args.clips} clips per round, median of {args.repeats} rounds"]
    write_report("bench_sources", tables, args.out, argv, smoke=args.smoke, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
