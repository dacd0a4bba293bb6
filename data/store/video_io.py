"""Video files ↔ BGR frames with real codecs: PyAV (its wheel bundles FFmpeg) or OpenCV's ``VideoCapture``.

No system ``ffmpeg`` binary is needed. ``iter_frames`` yields frames in display order, optionally cut to
``[start, end)`` seconds, subsampled to ``fps`` (never duplicated: the ffmpeg CLI's ``-r`` duplicates frames, so
frame counts disagreed with the decoders) and resized. ``write_video_file`` is the project's own writer, used
by the synthetic set and the tests.

Orientation: both decoders return frames as a player displays them. The container's display matrix (the
rotation a phone writes) is read once per file and applied here with ``np.rot90``, the same code for both
decoders; OpenCV's own auto-rotation is switched off so it cannot differ. Flips in the matrix are ignored.
(docs/differences.md#22)
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

# A broken file is reported once by us; keep FFmpeg's and OpenCV's own console warnings out of the progress bar.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

DECODERS = ("opencv", "pyav")
# Measured by benchmarks/bench_loader.py's decoder table: OpenCV decodes the same H.264 file faster here.
DEFAULT_DECODER = "opencv"
# Matched case-insensitively (``.MP4`` too) by every caller.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")
_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4", ".webm": "libvpx"}


class VideoDecodeError(Exception):
    """A video file could not be opened or decoded (message names the file and the reason)."""


def is_video_file(path: Path) -> bool:
    """True for a file whose extension (any case) is one of :data:`VIDEO_EXTENSIONS`."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()


def rotate_upright(img: np.ndarray, degrees: int) -> np.ndarray:
    """``img`` turned ``degrees`` counter-clockwise (the display-matrix convention), nearest quarter turn."""
    quarter = round(degrees / 90) % 4
    return np.ascontiguousarray(np.rot90(img, quarter)) if quarter else img


def output_size(width: int, height: int, short_side: int | None = None,
                size: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(W, H)`` after resizing: an exact ``size`` (W, H), the shorter side to ``short_side``, or unchanged."""
    if size is not None:
        return int(size[0]), int(size[1])
    if short_side is None or min(width, height) == short_side:
        return width, height
    scale = short_side / min(width, height)
    if width <= height:
        return short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), short_side


def stream_clock(stream: av.video.stream.VideoStream) -> tuple[float, float]:
    """``(start time in s, frame rate)`` of ``stream``: a frame's time is ``frame.time - start``, or ``i / rate``
    for the ``i``-th frame when it carries no timestamp."""
    base = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    return base, float(stream.average_rate or stream.guessed_rate or 25)


class FrameFilter:
    """The frames a conversion keeps, chosen from their display times ``t`` (s) in order: those in
    ``[start, end)``, at most ``fps`` per second (the first kept frame starts the count; never duplicated).

    ``filter(t)`` is True (keep), False (drop) or None (past ``end``: stop). Shared by `iter_frames` and the
    `data.store.video_clips` reader, so a frame index means the same frame in both.
    """

    def __init__(self, start: float | None = None, end: float | None = None, fps: float | None = None):
        self.start, self.end, self.fps = max(0.0, start or 0.0), end, fps
        self.next_tick, self.t0 = 0, None

    def __call__(self, t: float) -> bool | None:
        if t < self.start - 1e-6:
            return False
        if self.end is not None and t >= self.end - 1e-6:
            return None
        if self.fps:
            self.t0 = t if self.t0 is None else self.t0
            tick = math.floor((t - self.t0) * self.fps + 1e-3)
            if tick < self.next_tick:
                return False
            self.next_tick = tick + 1
        return True


def _pyav_frames(path: Path, start: float) -> Iterator[tuple[float, np.ndarray]]:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            base, rate = stream_clock(stream)
            if start > 0 and stream.time_base is not None:
                container.seek(int((start + base) / stream.time_base), stream=stream, backward=True)
            for i, frame in enumerate(container.decode(stream)):
                t = frame.time - base if frame.time is not None else i / rate
                yield t, rotate_upright(frame.to_ndarray(format="bgr24"), int(frame.rotation or 0))
    except av.FFmpegError as exc:
        raise VideoDecodeError(f"{path}: PyAV cannot decode ({exc})") from None


def _opencv_frames(path: Path, start: float) -> Iterator[tuple[float, np.ndarray]]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoDecodeError(f"{path}: OpenCV cannot open the file (not a video, or an unsupported codec)")
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)  # rotated below, as the PyAV path does
        degrees = -int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)  # OpenCV reports it clockwise
        rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
        i = 0
        while cap.grab():
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = msec / 1000.0 if msec >= 0 and (msec > 0 or i == 0) else i / rate
            i += 1
            if t < start - 1e-6:
                continue
            ok, img = cap.retrieve()
            if not ok or img is None:
                raise VideoDecodeError(f"{path}: OpenCV failed to decode frame {i}")
            yield t, rotate_upright(img, degrees)
    finally:
        cap.release()


def iter_frames(path: str | Path, *, decoder: str = DEFAULT_DECODER, start: float | None = None,
                end: float | None = None, fps: float | None = None, short_side: int | None = None,
                size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """BGR ``uint8`` frames ``(H, W, 3)`` of ``path`` in ``[start, end)`` seconds, at most ``fps`` per second."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder '{decoder}'; choose one of {', '.join(DECODERS)}")
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    open(path, "rb").close()  # a PermissionError here is the machine's fault, not the video's: let it through
    start = max(0.0, start or 0.0)
    frames = _pyav_frames(path, start) if decoder == "pyav" else _opencv_frames(path, start)
    keep = FrameFilter(start, end, fps)
    for t, img in frames:
        kept = keep(t)
        if kept is None:
            break
        if kept:
            yield resize_frame(img, short_side, size)


def resize_frame(img: np.ndarray, short_side: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """``img`` resized as the converter stores it (`output_size`, ``cv2.INTER_AREA``); unchanged if it fits."""
    h, w = img.shape[:2]
    out_w, out_h = output_size(w, h, short_side, size)
    return img if (out_w, out_h) == (w, h) else cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)


def probe(path: str | Path) -> dict:
    """Basic facts of a video file via PyAV: ``frames`` (container count, may be 0), ``fps``, ``width``, ``height``."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return {"frames": stream.frames, "fps": float(stream.average_rate or 0), "width": stream.width,
                    "height": stream.height,
                    "duration": float(stream.duration * stream.time_base) if stream.duration else None}
    except (av.FFmpegError, IndexError) as exc:
        raise VideoDecodeError(f"{path}: cannot probe ({exc})") from None


def write_video_file(path: str | Path, frames: Iterable[np.ndarray], fps: float = 25, codec: str | None = None,
                     crf: int = 18, rotation: int = 0) -> int:
    """Encode BGR ``uint8`` frames ``(H, W, 3)`` (even H, W) into ``path`` with PyAV; returns the frame count.

    The codec follows the extension (``.mp4``/``.mov``/``.mkv`` H.264, ``.avi`` MPEG-4 part 2, ``.webm`` VP8);
    ``rotation`` (degrees counter-clockwise, .mp4/.mov/.mkv) is stored as the display matrix, as phones do.
    """
    path = Path(path)
    codec = codec or _CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"{path}: unknown video extension; use one of {', '.join(_CODECS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        elif codec in ("mpeg4", "libvpx"):
            stream.bit_rate = 4_000_000
        for frame in frames:
            if n == 0:
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    raise ValueError(f"{path}: frame size {w}x{h} must be even for yuv420p")
                stream.width, stream.height = w, h
                if rotation:
                    stream.set_display_rotation(rotation)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")))
            n += 1
        container.mux(stream.encode(None))
    return n
