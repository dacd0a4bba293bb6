"""Clips read straight from a video file with PyAV, frame ``i`` being the frame a conversion stores as frame ``i``.

A conversion (`data.prep.convert`, through `data.store.video_io.iter_frames`) keeps the decoded frames that
`FrameFilter` accepts from their display times (the ``[start, end)`` cut of a time slice, at most ``--fps``
per second) and resizes them (``--short-side``/``--size``, ``cv2.INTER_AREA``). `FrameTimeline` applies the
same filter to the times of the container's packets, read without decoding (a few ms for a 10 s clip), so it
knows which frames the store would hold and how many. `read_clip` then seeks to the last keyframe at or
before the first frame a clip needs, decodes on one thread up to the last one, picks the wanted frames by
their timestamps and resizes only those, so frame ``i`` of the video source is frame ``i`` of the store
(pixel values differ only by the store's JPEG coding and the two decoders' colour conversion). A stream whose
packets carry no timestamps is decoded from the start and filtered frame by frame, as the converter does.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from data.store.video_io import FrameFilter, VideoDecodeError, resize_frame, rotate_upright, stream_clock


@dataclass(frozen=True)
class FrameOptions:
    """How a conversion picked and sized the frames: at most ``fps`` per second, shorter side ``short_side``
    or exactly ``size`` ``(W, H)`` (None: as decoded)."""

    fps: float | None = None
    short_side: int | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class FrameTimeline:
    """The kept frames of one video (cut to ``[start, end)`` s): ``pts`` of each in display order (None when
    the stream has no timestamps) and the ``keyframes``' pts, ascending."""

    pts: tuple[int, ...] | None
    keyframes: tuple[int, ...]
    count: int

    @classmethod
    def read(cls, stream: av.video.stream.VideoStream, container: av.container.InputContainer,
             start: float | None, end: float | None, fps: float | None) -> FrameTimeline:
        """Demux (not decode) every packet of ``stream`` and keep the frames `FrameFilter` keeps."""
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size > 0]
        if any(pts is None for pts, _ in packets) or stream.time_base is None:
            return cls(None, (), 0)  # no timestamps: the caller decodes and counts
        base, _ = stream_clock(stream)
        keep, tb, kept = FrameFilter(start, end, fps), stream.time_base, []
        for pts in sorted(pts for pts, _ in packets):
            verdict = keep(float(pts * tb) - base)
            if verdict is None:
                break
            if verdict:
                kept.append(pts)
        return cls(tuple(kept), tuple(sorted(pts for pts, key in packets if key)), len(kept))


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise VideoDecodeError(f"{path}: PyAV cannot open ({exc})") from None


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoDecodeError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_count = 1  # one decoder thread per DataLoader worker: the workers are the parallelism
    return stream


def count_frames(path: str | Path, start: float | None = None, end: float | None = None,
                 fps: float | None = None) -> int:
    """Frames a conversion of ``path`` with this cut and ``fps`` stores (packets only; decodes a stream without
    timestamps). Raises VideoDecodeError for a file that cannot be read."""
    path = Path(path)
    container = _open(path)
    try:
        stream = _video_stream(path, container)
        timeline = FrameTimeline.read(stream, container, start, end, fps)
        if timeline.pts is not None:
            return timeline.count
        container.seek(0)
        return sum(1 for _ in _filtered(container, stream, start, end, fps))
    except av.FFmpegError as exc:
        raise VideoDecodeError(f"{path}: PyAV cannot read ({exc})") from None
    finally:
        container.close()


def _filtered(container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: float | None,
              end: float | None, fps: float | None):
    """Decoded frames from the current position that `FrameFilter` keeps (times as `iter_frames` reads them)."""
    base, rate = stream_clock(stream)
    keep = FrameFilter(start, end, fps)
    for i, frame in enumerate(container.decode(stream)):
        verdict = keep(frame.time - base if frame.time is not None else i / rate)
        if verdict is None:
            return
        if verdict:
            yield frame


def _to_bgr(frame: av.VideoFrame, options: FrameOptions) -> np.ndarray:
    img = rotate_upright(frame.to_ndarray(format="bgr24"), int(frame.rotation or 0))
    return resize_frame(img, options.short_side, options.size)


def read_clip(path: str | Path, indices: Sequence[int], start: float | None = None, end: float | None = None,
              options: FrameOptions = FrameOptions(), frames: int | None = None) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` BGR uint8 at the 0-based kept-frame ``indices`` (any order, repeats allowed) of
    ``path`` cut to ``[start, end)`` s; raises VideoDecodeError naming the file for an unreadable video, an
    index past its last frame, or (with ``frames``, the count listed when it was prepared) a file that now holds
    another number of frames, whose indices would no longer mean the listed frames."""
    path, wanted = Path(path), sorted(set(int(i) for i in indices))
    if not wanted or wanted[0] < 0:
        raise VideoDecodeError(f"{path}: frame indices must be >= 0, got {list(indices)[:5]}")
    container = _open(path)
    try:
        stream = _video_stream(path, container)
        timeline = FrameTimeline.read(stream, container, start, end, options.fps)
        if timeline.pts is None:
            decoded = _read_in_order(container, stream, wanted, start, end, options)
        else:
            if frames is not None and timeline.count != frames:
                raise VideoDecodeError(f"{path}: holds {timeline.count} frames, {frames} when it was listed; the "
                                       "file changed since: re-run `python -m data.prepare` to list it again")
            decoded = _read_by_pts(path, container, stream, timeline, wanted, options)
    except av.FFmpegError as exc:
        raise VideoDecodeError(f"{path}: PyAV cannot decode ({exc})") from None
    finally:
        container.close()
    missing = [i for i in wanted if i not in decoded]
    if missing:
        raise VideoDecodeError(f"{path}: frame {missing[0]} could not be decoded (truncated or corrupt file? "
                               "check it with `python -m data.prepare` again)")
    try:
        return np.stack([decoded[int(i)] for i in indices])
    except ValueError as exc:
        raise VideoDecodeError(f"{path}: frames differ in size ({exc})") from None


def _read_by_pts(path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 timeline: FrameTimeline, wanted: list[int], options: FrameOptions) -> dict[int, np.ndarray]:
    if wanted[-1] >= timeline.count:
        raise VideoDecodeError(f"{path}: frame {wanted[-1]} asked for, the video has {timeline.count} frames "
                               "(changed since it was prepared? re-run `python -m data.prepare`)")
    index = {timeline.pts[i]: i for i in wanted}
    first, last = timeline.pts[wanted[0]], timeline.pts[wanted[-1]]
    key = bisect_right(timeline.keyframes, first) - 1
    frames = _decode_range(container, stream, index, last, timeline.keyframes[key] if key >= 0 else None, options)
    if len(frames) < len(index) and key >= 0:  # a seek that landed after the frame: decode from the start
        frames = _decode_range(container, stream, index, last, -1, options)
    return frames


def _decode_range(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  index: dict[int, int], last: int, seek_pts: int | None, options: FrameOptions
                  ) -> dict[int, np.ndarray]:
    """Decode from the keyframe at ``seek_pts`` (-1 or None: the start) until ``last``; the frames in ``index``."""
    container.seek(seek_pts if seek_pts is not None and seek_pts >= 0 else 0, stream=stream, backward=True,
                   any_frame=False)
    frames: dict[int, np.ndarray] = {}
    for frame in container.decode(stream):
        if frame.pts is None:
            break
        i = index.get(frame.pts)
        if i is not None:
            frames[i] = _to_bgr(frame, options)
            if len(frames) == len(index):
                break
        if frame.pts > last:
            break
    return frames


def _read_in_order(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   wanted: list[int], start: float | None, end: float | None, options: FrameOptions
                   ) -> dict[int, np.ndarray]:
    container.seek(0)
    frames: dict[int, np.ndarray] = {}
    targets = set(wanted)
    for i, frame in enumerate(_filtered(container, stream, start, end, options.fps)):
        if i in targets:
            frames[i] = _to_bgr(frame, options)
        if i >= wanted[-1]:
            break
    return frames
