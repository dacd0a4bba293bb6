"""Kinetics-200/400/600/700 CSVs (``label,youtube_id,time_start,time_end,split``), clips either trimmed
(``<youtube_id>_<start:06d>_<end:06d>.mp4``) or full videos (``<youtube_id>.mp4``, cut here)."""
from __future__ import annotations

from data.catalog.labels import slice_name
from data.prep.annotations.base import Annotations, Entry, ParseArgs, find_annotation, number, read_csv, register

COLUMNS = ("label", "youtube_id", "time_start", "time_end")
SPLIT_FILES = {"train": ("train.csv", "kinetics-{v}_train.csv", "kinetics_{v}_train.csv", "kinetics_train.csv"),
               "val": ("validate.csv", "val.csv", "kinetics-{v}_val.csv", "kinetics_{v}_val.csv",
                       "kinetics-{v}_validate.csv", "kinetics_{v}_validate.csv", "kinetics_val.csv")}


@register("kinetics")
def parse(args: ParseArgs) -> Annotations:
    """Classes in alphabetical order (the usual Kinetics index; the CSVs publish none)."""
    variant = args.variant or 700
    out = Annotations([])
    for split, names in SPLIT_FILES.items():
        path = find_annotation(args, *(n.format(v=variant) for n in names))
        for where, row in read_csv(path, COLUMNS):
            start, end = number(row["time_start"], where, "time_start"), number(row["time_end"], where, "time_end")
            vid = row["youtube_id"]
            out.entries.append(Entry(row["label"], vid, split, where, stems=(vid,),
                                     trimmed=(slice_name(vid, start, end),), start=start, end=end))
    out.classes = sorted({e.label for e in out.entries if e.split == "train"})
    return out
