"""What every annotation parser shares: the entry types, the parser registry and the file readers.

A parser turns a data set's published files into :class:`Annotations`: the classes in the official order
(class index = official index where the data set has one) and one :class:`Entry` per video or clip.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

SPLITS = ("train", "val")


@dataclass(frozen=True)
class Entry:
    """One video (or clip) of the annotations.

    ``trimmed`` are file names (without extension) of a clip already cut to ``[start, end)`` (used whole),
    ``stems`` those of the full video (cut here), looked for in that order under the video folder; ``path`` is
    set instead when the parser already knows the file. ``source`` names the annotation file and line.
    """

    label: str
    video_id: str
    split: str
    source: str
    stems: tuple[str, ...] = ()
    trimmed: tuple[str, ...] = ()
    start: float | None = None
    end: float | None = None
    path: Path | None = None


@dataclass
class Annotations:
    """Classes in the official order and the entries of both splits."""

    classes: list[str]
    entries: list[Entry] = field(default_factory=list)


@dataclass(frozen=True)
class ParseArgs:
    """What a parser may need besides the annotation folder."""

    annotations: Path | None
    videos: Path
    split: int = 1
    variant: int | None = None
    val_fraction: float = 0.2


class Parser(Protocol):
    def __call__(self, args: ParseArgs) -> Annotations: ...


PARSERS: dict[str, Parser] = {}


def register(name: str) -> Callable[[Parser], Parser]:
    """Register a parser under ``name`` (``python -m data.prepare NAME``); a duplicate name is an error."""
    def add(fn: Parser) -> Parser:
        if name in PARSERS:
            raise ValueError(f"annotation parser '{name}' registered twice")
        PARSERS[name] = fn
        return fn
    return add


def find_annotation(args: ParseArgs, *names: str) -> Path:
    """The first of ``names`` found in ``--annotations`` or any folder below it; one-line error otherwise."""
    root = args.annotations
    if root is None:
        raise FileNotFoundError(f"--annotations is required: the folder holding {' or '.join(names)}")
    if root.is_file() and root.name in names:
        return root
    for name in names:
        hits = sorted(root.rglob(name)) if root.is_dir() else []
        if hits:
            return hits[0]
    raise FileNotFoundError(f"{root}: none of {', '.join(names)} found in it or below; point --annotations at "
                            "the folder of the official annotation files")


def read_csv(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """``(file:line, row)`` for each non-empty row of a CSV with a header naming at least ``columns``."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        lacking = [c for c in columns if c not in header]
        if lacking:
            raise ValueError(f"{path}:1: header {header} lacks {lacking}; expected the official columns "
                             f"{', '.join(columns)}")
        for row in reader:
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                yield f"{path}:{reader.line_num}", {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)}


def read_json(path: Path) -> object:
    """The parsed JSON of ``path`` or a one-line error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def number(value: str, where: str, column: str) -> float:
    """``float(value)`` or a one-line error naming the row."""
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: {column} '{value}' is not a number") from None


def folder_name(label: str) -> str:
    """A class name usable as a folder: '/' and '\\' become '-', and leading dots are dropped."""
    return label.replace("/", "-").replace("\\", "-").lstrip(".").strip() or "_"
