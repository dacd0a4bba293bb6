"""Where the video files of a prepared data set are: ``<data folder>/videos.json``, beside ``jpg/``.

``python -m data.prepare`` writes it (with or without ``--no-convert``) so that ``--source video`` can read
clips straight from the files. Format (JSON)::

    {"format": 1,
     "videos": "/abs/path/given/to/--videos",            # the files below are relative to it
     "fps": null, "short_side": null, "size": null,      # the frame options of the preparation
     "entries": {"<label>/<folder name>": {"file": "train/abc.mp4", "start": 1.0, "end": 3.0, "frames": 50}}}

An entry's key is the folder a conversion writes under ``jpg/`` (``<label>/<id>`` or the time-slice name,
`data.catalog.labels.CsvRow.rel_path`), so a CSV row finds its file as it finds its frame folder. ``start``/``end``
is the cut read from the file (null: the whole file, e.g. an already-trimmed clip) and ``frames`` the number of
frames a conversion with these options stores (`data.store.video_clips.count_frames`). ``videos`` may be edited
to follow moved files (a relative path is relative to the JSON's folder).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.catalog.labels import CsvRow
from data.store.atomic import atomic_write_text
from data.store.video_clips import FrameOptions

FORMAT = 1


@dataclass(frozen=True)
class VideoEntry:
    """One prepared video: ``file`` (relative to the manifest's ``videos`` folder), its cut and frame count."""

    file: str
    start: float | None
    end: float | None
    frames: int


@dataclass(frozen=True)
class VideoSources:
    """A data set's video files (see the module doc); ``find`` locates a CSV row's video for ``load_records``."""

    videos: Path
    options: FrameOptions
    entries: Mapping[str, VideoEntry] = field(default_factory=dict)

    def find(self, row: CsvRow) -> tuple[Path, int, float | None, float | None] | None:
        """``(file, frames, start, end)`` of ``row``'s video, or None when it was not prepared or is gone."""
        entry = self.entries.get(row.rel_path.as_posix())
        if entry is None:
            return None
        path = self.videos / entry.file
        return (path, entry.frames, entry.start, entry.end) if path.is_file() else None

    def to_json(self) -> dict[str, Any]:
        o = self.options
        return {"format": FORMAT, "videos": str(self.videos), "fps": o.fps, "short_side": o.short_side,
                "size": list(o.size) if o.size else None,
                "entries": {k: {"file": e.file, "start": e.start, "end": e.end, "frames": e.frames}
                            for k, e in sorted(self.entries.items())}}

    def write(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (``<data folder>/videos.json``)."""
        return atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")


def read_sources(path: str | Path) -> VideoSources:
    """Read a manifest; a missing or malformed file raises one line naming it and the fix."""
    path = Path(path)
    fix = "re-run `python -m data.prepare ... --no-convert` to write it"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no video list for --source video; {fix}")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        videos = Path(data["videos"])
        size = data.get("size")
        options = FrameOptions(data.get("fps"), data.get("short_side"), tuple(size) if size else None)
        entries = {str(k): VideoEntry(str(e["file"]), e.get("start"), e.get("end"), int(e["frames"]))
                   for k, e in data["entries"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a valid video list ({exc}); {fix}") from None
    return VideoSources(videos if videos.is_absolute() else path.parent / videos, options, entries)
