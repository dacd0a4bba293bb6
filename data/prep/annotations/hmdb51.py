"""HMDB-51 ``testTrainMulti_7030_splits/<class>_test_split<N>.txt``: lines ``<video>.avi <1|2|0>``
(1 = train, 2 = test, 0 = not used in this split)."""
from __future__ import annotations

import re
from pathlib import Path

from data.prep.annotations.base import Annotations, Entry, ParseArgs, register

SPLIT_OF = {"1": "train", "2": "val"}


@register("hmdb51")
def parse(args: ParseArgs) -> Annotations:
    """Classes in alphabetical order (HMDB-51 publishes no index); split ``args.split`` (1-3)."""
    if args.annotations is None or not args.annotations.is_dir():
        raise FileNotFoundError(f"--annotations {args.annotations}: expected the testTrainMulti_7030_splits folder")
    pattern = re.compile(rf"(.+)_test_split{args.split}\.txt")
    files: dict[str, Path] = {}
    for path in sorted(args.annotations.rglob(f"*_test_split{args.split}.txt")):
        match = pattern.fullmatch(path.name)
        if match:
            files.setdefault(match[1], path)
    if not files:
        raise FileNotFoundError(f"{args.annotations}: no <class>_test_split{args.split}.txt files in it or below "
                                "(the testTrainMulti_7030_splits folder of HMDB-51)")
    out = Annotations(sorted(files))
    for label in out.classes:
        path = files[label]
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}:{n}: expected '<video>.avi <0|1|2>', got '{line.strip()}'")
            if parts[1] in SPLIT_OF:
                stem = Path(parts[0]).stem
                out.entries.append(Entry(label, stem, SPLIT_OF[parts[1]], f"{path}:{n}", stems=(stem,)))
    return out
