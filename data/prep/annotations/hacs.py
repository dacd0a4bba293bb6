"""HACS Clips v1.1 CSV (``classname,youtube_id,subset,start,end,label``): ``label`` 1 marks a positive clip,
-1 a negative one (the action is absent), which a classifier cannot use and is left out."""
from __future__ import annotations

import logging

from data.catalog.labels import slice_name
from data.prep.annotations.base import Annotations, Entry, ParseArgs, find_annotation, number, read_csv, register

log = logging.getLogger(__name__)
COLUMNS = ("classname", "youtube_id", "subset", "start", "end", "label")
SUBSETS = {"training": "train", "validation": "val"}


@register("hacs")
def parse(args: ParseArgs) -> Annotations:
    """Classes in alphabetical order; full videos may be named ``<id>`` or ``v_<id>`` (the HACS download)."""
    path = find_annotation(args, "HACS_clips_v1.1.csv", "HACS_clips_v1.csv")
    out, negatives = Annotations([]), 0
    for where, row in read_csv(path, COLUMNS):
        split = SUBSETS.get(row["subset"].lower())
        if split is None:
            continue  # 'testing' has no labels
        if number(row["label"], where, "label") < 0:
            negatives += 1
            continue
        start, end, vid = number(row["start"], where, "start"), number(row["end"], where, "end"), row["youtube_id"]
        out.entries.append(Entry(row["classname"], vid, split, where, stems=(vid, f"v_{vid}"),
                                 trimmed=(slice_name(vid, start, end),), start=start, end=end))
    if negatives:
        log.info("%s: left out %d negative clips (label -1)", path, negatives)
    out.classes = sorted({e.label for e in out.entries})
    return out
