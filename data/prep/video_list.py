"""Write ``<data folder>/videos.json``: each prepared video's file, cut and frame count, for ``--source video``.

`data.prep.prepare` calls `write_video_list` with its conversion jobs (one per output folder, so the keys are
the folders the loaders compute from the CSVs), with or without ``--no-convert``. Counting reads the packets
of each file (`data.store.video_clips.count_frames`, a few ms per clip), over ``--workers`` processes. A file
that cannot be read is listed as FAILED and left out of the list; `data.prep.prepare` then leaves its rows out
of the label CSVs and names it in ``failed_videos.txt``, as for a video that failed to convert. After a
conversion, a file whose count differs from its stored video's (replaced since it was converted) is also listed
as FAILED and left out of the list, its rows kept for the store.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from data.catalog.spec import manifest_path
from data.catalog.video_sources import VideoEntry, VideoSources
from data.prep.convert import EXIT_FAILED, Job
from data.prep.parallel import parallel_map
from data.store.frames_db import FrameReadError, is_complete, read_n_frames
from data.store.video_clips import FrameOptions, count_frames
from data.store.video_io import VideoDecodeError

log = logging.getLogger(__name__)


def count_job(job: Job, fps: float | None) -> tuple[Job, int, str | None]:
    """``(job, frames a conversion of it stores, None)`` or ``(job, 0, one-line reason)``."""
    try:
        return job, count_frames(job.src, job.start, job.end, fps), None
    except (VideoDecodeError, OSError) as exc:
        return job, 0, str(exc).replace("\n", " ")


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies below it, else absolute."""
    rel = os.path.relpath(path.resolve(), root)
    return str(path.resolve()) if rel.startswith("..") else Path(rel).as_posix()


def store_disagrees(job: Job, frames: int) -> str | None:
    """One line when the frame store ``job.dst`` holds another number of frames than ``frames`` (the file's count
    for ``--source video``): frame ``i`` would then be another frame in the two sources. None when they agree or
    there is no complete store."""
    if not is_complete(job.dst):
        return None
    try:
        stored = read_n_frames(job.dst)
    except FrameReadError as exc:
        return str(exc)
    if stored == frames:
        return None
    return (f"{job.src}: {frames} frames in the file, {stored} in its frame store {job.dst} (the file changed since "
            "it was converted?): left out of the video list; delete that folder and re-run to store it again")


def list_videos(jobs: Sequence[Job], jpg: Path, videos: Path, options: FrameOptions, workers: int = 1,
                check_store: bool = False) -> tuple[VideoSources, dict[Path, str]]:
    """The video list of ``jobs`` (outputs under ``jpg``, files under ``videos``) and ``{output folder: one-line
    reason}`` of the jobs whose file cannot be read, or (``check_store``) whose count differs from the frame
    store's (:func:`store_disagrees`)."""
    root = videos.resolve()
    entries, failures = {}, {}
    for job, frames, error in parallel_map(partial(count_job, fps=options.fps), list(jobs), workers):
        if error is None and frames >= 1 and check_store:
            error = store_disagrees(job, frames)
        if error is not None or frames < 1:
            failures[job.dst] = error if error else f"{job.src}: no frames in [{job.start}, {job.end}) s"
            continue
        key = job.dst.relative_to(jpg).as_posix()
        entries[key] = VideoEntry(_relative(job.src, root), job.start, job.end, frames)
    return VideoSources(root, options, entries), failures


def write_video_list(jobs: Sequence[Job], dst: Path, videos: Path, options: FrameOptions, workers: int = 1,
                     max_failed: float = 1.0, check_store: bool = False) -> tuple[int, dict[Path, str]]:
    """List ``jobs`` in ``dst/videos.json``; returns ``(0, or 1 when more than ``max_failed`` percent failed;
    {output folder: reason} of the unreadable files)``. ``check_store``: after a conversion, leave out the videos
    whose count differs from the store's."""
    sources, failures = list_videos(jobs, dst / "jpg", videos, options, workers, check_store)
    path = sources.write(manifest_path(dst / "jpg"))
    log.info("listed %d videos (%d failed) for --source video → %s", len(sources.entries), len(failures), path)
    for line in failures.values():
        log.warning("FAILED %s", line)
    share = 100.0 * len(failures) / max(1, len(jobs))
    if failures and share > max_failed:
        log.error("%d of %d videos (%.1f%%) cannot be read, more than --max-failed %g%%; fix or remove them "
                  "(listed above)", len(failures), len(jobs), share, max_failed)
        return EXIT_FAILED, failures
    return 0, failures
