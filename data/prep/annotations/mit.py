"""Moments in Time: ``moments_categories.txt`` (``<class>,<index>``) and ``trainingSet.csv`` /
``validationSet.csv`` (no header: ``<class>/<file>.mp4,<class>,<agreements>,<disagreements>``)."""
from __future__ import annotations

import csv
from pathlib import PurePosixPath

from data.prep.annotations.base import Annotations, Entry, ParseArgs, find_annotation, register


@register("mit")
def parse(args: ParseArgs) -> Annotations:
    """Classes in ``moments_categories.txt`` index order."""
    cat_file = find_annotation(args, "moments_categories.txt", "categories.txt")
    indexed = {}
    for n, line in enumerate(cat_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        name, _, index = line.rpartition(",")
        if not name or not index.strip().isdigit():
            raise ValueError(f"{cat_file}:{n}: expected '<class>,<index>', got '{line.strip()}'")
        indexed[int(index)] = name.strip()
    if sorted(indexed) != list(range(len(indexed))):
        raise ValueError(f"{cat_file}: indices are not 0..{len(indexed) - 1}")
    out = Annotations([indexed[i] for i in range(len(indexed))])
    for split, name in (("train", "trainingSet.csv"), ("val", "validationSet.csv")):
        path = find_annotation(args, name)
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for n, row in enumerate(csv.reader(fh), start=1):
                if len(row) < 2:
                    continue
                rel = PurePosixPath(row[0].strip().replace("\\", "/"))
                out.entries.append(Entry(row[1].strip(), rel.stem, split, f"{path}:{n}", stems=(rel.stem,)))
    return out
