"""A small built-in action data set whose classes differ ONLY in motion, written in the real on-disk format.

    python -m data.synthetic --out DIR [--classes 8] [--videos-per-class 120] [--frames 32] [--size 64]
                             [--seed 0] [--val-fraction 0.25] [--workers 1] [--videos DIR2]

Classes: move left/right/up/down, rotate clockwise/anticlockwise, grow, shrink. Every clip draws a random shape
(circle, square, triangle, cross, star, hexagon, each with an off-centre marker so rotation is visible) in
random colours, with a smooth random surface pattern that moves, turns and scales with it (so the motion shows
inside the object, not only at its outline), over a random smooth texture with per-frame noise. Everything is
periodic so that any single frame has the same distribution for every class: positions wrap around the frame
(a torus), the angle starts uniformly at random, and the size is periodic in log-radius with a uniformly random
phase (an object growing past the largest size fades out while a new smallest copy fades in). Only the change
over time tells the classes apart; a horizontal flip would swap classes, so the set uses the 'none'
augmentation policy.
Deterministic: each clip has its own generator seeded by ``(seed, class, video)``, so the bytes do not depend
on ``--workers``. Output: ``DIR/data/Synthetic_videos/jpg/<class>/<id>/`` and ``DIR/labels/synthetic_{train,val}.csv``.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from data.catalog.datasets import SYNTHETIC
from data.catalog.labels import dictionary_path, write_dictionary
from data.catalog.spec import DatasetPaths
from data.prep.help_text import plain_help
from data.prep.parallel import consume, parallel_map
from data.store.frames_db import write_video
from data.store.video_io import write_video_file

log = logging.getLogger(__name__)

CLASSES = ("move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "grow", "shrink")
SYNTHETIC_SPEC = SYNTHETIC  # registered in data.catalog.datasets with the demo's defaults
if SYNTHETIC.num_classes != len(CLASSES):
    raise RuntimeError(f"data.catalog.datasets.SYNTHETIC has {SYNTHETIC.num_classes} classes, "
                       f"data.prep.synthetic draws {len(CLASSES)}")

# Per-frame motion, in units of the frame side S (translation), degrees (rotation) and log-radius (scaling).
SPEED = (0.025, 0.035)
SPIN = (4.0, 6.0)  # at most 24° between clip frames at interval 4 (12° at the demo's 2): below the hexagon's 60°
GROWTH = (0.03, 0.04)
LOG_RADIUS = (float(np.log(0.18)), float(np.log(0.45)))  # radius as a fraction of S, before the fade zone
FADE = 0.2  # log-radius span over which an object fades in at the smallest and out beyond the largest size
TEXTURE = (100.0, 155.0)  # background colour range (smooth texture), then static grain and per-frame noise std
GRAIN, NOISE = 2.0, 2.0
GRATINGS, CYCLES = 3, (0.8, 1.6)  # object pattern: plane waves, cycles per object radius
PATTERN = 0.8  # pattern contrast, as a share of the body-to-marker colour difference


def _unit_shapes() -> dict[str, np.ndarray]:
    def ring(k: int, r: float = 1.0, phase: float = 0.0) -> np.ndarray:
        a = phase + np.arange(k) * 2 * np.pi / k
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)

    star = ring(10, 1.0, -np.pi / 2)
    star[1::2] *= 0.45
    arm = 0.34
    cross = np.array([[-arm, -1], [arm, -1], [arm, -arm], [1, -arm], [1, arm], [arm, arm], [arm, 1], [-arm, 1],
                      [-arm, arm], [-1, arm], [-1, -arm], [-arm, -arm]])
    return {"circle": ring(32), "square": ring(4, 1.0, np.pi / 4), "triangle": ring(3, 1.0, -np.pi / 2),
            "cross": cross, "star": star, "hexagon": ring(6)}


SHAPES = _unit_shapes()
MARKER = SHAPES["circle"] * 0.35 + np.array([0.55, 0.0])


def _contrasting(rng: np.random.Generator, against: np.ndarray, min_dist: float) -> np.ndarray:
    colour = rng.uniform(0, 255, 3)
    for _ in range(50):
        if np.linalg.norm(colour - against) >= min_dist:
            break
        colour = rng.uniform(0, 255, 3)
    return colour.astype(np.float32)


def _draw(masks: np.ndarray, poly: np.ndarray, size: int) -> None:
    """Fill ``poly`` (K, 2) into ``masks`` (S, S) on a torus: copies shifted by ±S cover the wrapped parts."""
    lo, hi = poly.min(0), poly.max(0)
    for dx in (-size, 0, size):
        for dy in (-size, 0, size):
            if hi[0] + dx < 0 or lo[0] + dx >= size or hi[1] + dy < 0 or lo[1] + dy >= size:
                continue
            pts = np.round((poly + (dx, dy)) * 16).astype(np.int32)
            cv2.fillPoly(masks, [pts], 255, lineType=cv2.LINE_AA, shift=4)


def motion(cls: str, rng: np.random.Generator, frames: int, size: int
           ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Per-frame centre ``(T, 2)`` px, angle ``(T,)`` rad and layers ``[(radius (T,) px, opacity (T,))]``.

    Size is periodic in log-radius with a uniformly random phase, so every class has the same size
    distribution at every frame. Instead of jumping from the largest size back to the smallest, a second copy
    keeps growing beyond the largest size while it fades out and the new one fades in (and the reverse for
    shrinking), so the motion stays continuous.
    """
    t = np.arange(frames, dtype=np.float64)
    centre = rng.uniform(0, size, 2) + 0 * t[:, None]
    if cls.startswith("move_"):
        axis = {"move_left": np.pi, "move_right": 0.0, "move_up": -np.pi / 2, "move_down": np.pi / 2}[cls]
        heading = axis + np.deg2rad(rng.uniform(-10, 10))
        speed = rng.uniform(*SPEED) * size
        centre = (centre + t[:, None] * speed * np.array([np.cos(heading), np.sin(heading)])) % size
    angle = rng.uniform(0, 2 * np.pi) + 0 * t
    if cls.startswith("rotate_"):  # image y points down, so a positive angle step turns clockwise on screen
        angle = angle + (1 if cls == "rotate_cw" else -1) * np.deg2rad(rng.uniform(*SPIN)) * t
    width = LOG_RADIUS[1] - LOG_RADIUS[0]
    rate = {"grow": 1.0, "shrink": -1.0}.get(cls, 0.0) * rng.uniform(*GROWTH)
    x = np.mod(rng.uniform(0, width) + rate * t, width)
    layers = [(np.exp(LOG_RADIUS[0] + width + x) * size, np.clip(1 - x / FADE, 0, 1)),  # the outgoing copy
              (np.exp(LOG_RADIUS[0] + x) * size, np.clip(x / FADE, 0, 1))]
    return centre, angle, layers


def _pattern(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Plane waves ``(G, 2)`` (radians per object radius) and phases ``(G,)`` of an object's surface pattern."""
    theta = rng.uniform(0, 2 * np.pi, GRATINGS)
    freq = rng.uniform(*CYCLES, GRATINGS) * 2 * np.pi
    waves = np.stack([np.cos(theta), np.sin(theta)], 1) * freq[:, None]
    return waves.astype(np.float32), rng.uniform(0, 2 * np.pi, GRATINGS).astype(np.float32)


def _texture(u: np.ndarray, waves: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """The pattern in ``[0, 1]`` at object coordinates ``u`` (..., 2), in units of the object radius.

    It moves, turns and scales with the object, so the motion shows inside the object, not only at its outline.
    """
    value = np.sin(u @ waves.T + phase).sum(-1) / np.sqrt(len(phase) / 2)  # about unit variance
    return (0.5 + 0.5 * np.tanh(1.5 * value)).astype(np.float32)


def render_clip(cls: str, rng: np.random.Generator, frames: int = 32, size: int = 64,
                return_masks: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One clip ``(T, S, S, 3)`` BGR uint8 of class ``cls`` (``return_masks``: also object opacity ``(T, S, S)``)."""
    if cls not in CLASSES:
        raise ValueError(f"unknown synthetic class '{cls}'; choose one of {', '.join(CLASSES)}")
    colours = rng.uniform(*TEXTURE, (4, 4, 3)).astype(np.float32)
    colours = 0.5 * colours + 0.5 * colours.mean(2, keepdims=True)  # half-saturated: texture, not a rainbow
    base = cv2.resize(colours, (size, size), interpolation=cv2.INTER_CUBIC)
    clip = np.broadcast_to(base + rng.normal(0, GRAIN, (size, size, 3)).astype(np.float32), (frames, size, size, 3))
    colour = _contrasting(rng, base.mean((0, 1)), 150.0)
    marker_colour = _contrasting(rng, colour, 110.0)
    shape = SHAPES[list(SHAPES)[rng.integers(len(SHAPES))]]
    centre, angle, layers = motion(cls, rng, frames, size)
    cos, sin = np.cos(angle), np.sin(angle)
    waves, phase = _pattern(rng)
    # pixel offsets from the centre, wrapped to the nearest copy on the torus: dx (T, S) per column, dy (T, S) per row
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = (grid[None, :] - centre[:, 0, None].astype(np.float32) + size / 2) % size - size / 2
    dy = (grid[None, :] - centre[:, 1, None].astype(np.float32) + size / 2) % size - size / 2
    cs, sn = cos.astype(np.float32), sin.astype(np.float32)
    flat = np.array(clip).reshape(-1, 3)  # writable (T*S*S, 3); painted below only where an object covers a pixel
    opacity = np.zeros(frames * size * size, np.float32)
    for radius, alpha in layers:
        if not alpha.any():
            continue
        body = np.zeros((frames, size, size), np.uint8)
        mark = np.zeros((frames, size, size), np.uint8)
        for i in np.flatnonzero(alpha):
            rot = np.array([[cos[i], -sin[i]], [sin[i], cos[i]]]) * radius[i]
            _draw(body[i], shape @ rot.T + centre[i], size)
            _draw(mark[i], MARKER @ rot.T + centre[i], size)
        inside = np.flatnonzero(body)  # the pattern and the blend only where the object is (elsewhere a = 0)
        t, y, x = inside // (size * size), inside // size % size, inside % size
        px, py, ct, st = dx[t, x], dy[t, y], cs[t], sn[t]
        # into the object's frame (undo the rotation), in units of the radius
        local = np.stack([ct * px + st * py, ct * py - st * px], -1) / radius.astype(np.float32)[t, None]
        # the same pattern for both layers: the copy that fades in continues the one that fades out
        tex = _texture(local, waves, phase)[:, None]
        fill = colour + tex * (marker_colour - colour) * PATTERN
        a = body.reshape(-1)[inside][:, None].astype(np.float32) * (alpha[t, None] / 255).astype(np.float32)
        m = mark.reshape(-1)[inside][:, None].astype(np.float32) / 255 * a
        painted = flat[inside] * (1 - a) + fill * a
        flat[inside] = painted * (1 - m) + marker_colour * m
        opacity[inside] = np.maximum(opacity[inside], a[:, 0])
    clip, opacity = flat.reshape(frames, size, size, 3), opacity.reshape(frames, size, size)
    clip += rng.standard_normal((frames, size, size, 1), dtype=np.float32) * NOISE  # new each frame
    out = np.clip(clip, 0, 255, out=clip).round(out=clip).astype(np.uint8)
    return (out, opacity) if return_masks else out


def _make_clip(job: tuple[int, int], *, seed: int, classes: tuple[str, ...], frames: int, size: int, jpg: Path,
               videos: Path | None, quality: int) -> None:
    cls_index, video = job
    cls = classes[cls_index]
    clip = render_clip(cls, np.random.default_rng([seed, cls_index, video]), frames, size)
    write_video(jpg / cls / video_id(cls, video), list(clip), quality=quality)
    if videos is not None:
        write_video_file(videos / cls / f"{video_id(cls, video)}.mp4", clip, fps=25)


def video_id(cls: str, video: int) -> str:
    """Folder name of clip ``video`` of class ``cls``."""
    return f"{cls}_{video:04d}"


def generate(out_dir: str | Path, *, num_classes: int = 8, videos_per_class: int = 120, frames: int = 32,
             size: int = 64, seed: int = 0, val_fraction: float = 0.25, workers: int = 1,
             videos_dir: str | Path | None = None, quality: int = 90) -> DatasetPaths:
    """Write the set under ``out_dir`` (layout of :data:`SYNTHETIC_SPEC`) and return its resolved paths.

    The last ``round(val_fraction * videos_per_class)`` clips of each class are the validation split.
    ``videos_dir`` also writes every clip as ``<videos_dir>/<class>/<id>.mp4`` (H.264, 25 fps).
    """
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be 1..{len(CLASSES)}, got {num_classes}")
    if videos_per_class < 1 or frames < 2 or size < 16 or size % 2:
        raise ValueError(f"need videos_per_class >= 1, frames >= 2 and an even size >= 16; got "
                         f"{videos_per_class}, {frames}, {size}")
    n_val = int(round(val_fraction * videos_per_class))
    if not 0 <= n_val < videos_per_class:
        raise ValueError(f"val_fraction {val_fraction} leaves no training clips of {videos_per_class}")
    out = Path(out_dir)
    classes = CLASSES[:num_classes]
    jpg = out / "data" / SYNTHETIC_SPEC.folder / "jpg"
    labels = out / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    jobs = [(c, v) for c in range(num_classes) for v in range(videos_per_class)]
    fn = partial(_make_clip, seed=seed, classes=classes, frames=frames, size=size, jpg=jpg, quality=quality,
                 videos=Path(videos_dir) if videos_dir is not None else None)
    consume(parallel_map(fn, jobs, workers))
    n_train = videos_per_class - n_val
    # The CSVs are written after every clip: their presence marks a complete set (train_synthetic.py relies on it).
    for split, rows in (("train", range(n_train)), ("val", range(n_train, videos_per_class))):
        with open(labels / f"synthetic_{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["label", "id", "split"])
            writer.writerows([cls, video_id(cls, v), split] for cls in classes for v in rows)
    write_dictionary(dictionary_path(labels / SYNTHETIC_SPEC.train_csv), {c: i for i, c in enumerate(classes)})
    return replace(SYNTHETIC_SPEC, num_classes=num_classes).resolve(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data.synthetic", description=plain_help(__doc__),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output folder (data/ and labels/ are created in it)")
    ap.add_argument("--classes", type=int, default=8, help=f"number of classes, 1..{len(CLASSES)} (default 8)")
    ap.add_argument("--videos-per-class", type=int, default=120,
                    help="clips per class (default 120: with fewer, small 3D CNNs memorise clips instead of motion)")
    ap.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    ap.add_argument("--size", type=int, default=64, help="frame side in pixels, even (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes")
    ap.add_argument("--val-fraction", type=float, default=0.25, help="share of each class in the val split")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    ap.add_argument("--videos", type=Path, default=None, help="also write DIR2/<class>/<id>.mp4 video files")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    try:
        paths = generate(args.out, num_classes=args.classes, videos_per_class=args.videos_per_class,
                         frames=args.frames, size=args.size, seed=args.seed, val_fraction=args.val_fraction,
                         workers=args.workers, videos_dir=args.videos)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    log.info("wrote %d clips (%d classes × %d, %d frames of %d px) in %.1f s → %s, labels in %s",
             args.classes * args.videos_per_class, args.classes, args.videos_per_class, args.frames, args.size,
             time.perf_counter() - t0, paths.jpg_dir, paths.labels_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
