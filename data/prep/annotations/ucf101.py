"""UCF-101 ``ucfTrainTestlist``: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
(``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``) and ``testlist0N.txt`` (``ApplyEyeMakeup/v_....avi``)."""
from __future__ import annotations

from pathlib import PurePosixPath

from data.prep.annotations.base import Annotations, Entry, ParseArgs, find_annotation, register


@register("ucf101")
def parse(args: ParseArgs) -> Annotations:
    """Classes in ``classInd.txt`` order (index 1 → class 0); split ``args.split`` (1-3)."""
    class_file = find_annotation(args, "classInd.txt")
    classes = []
    for n, line in enumerate(class_file.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise ValueError(f"{class_file}:{n}: expected '<index> <class>' with index {len(classes) + 1}, "
                             f"got '{line.strip()}'")
        classes.append(parts[1])
    by_lower = {c.lower(): c for c in classes}  # the lists write 'HandstandPushups' as classInd does, files do not
    out = Annotations(classes)
    for split, name in (("train", f"trainlist{args.split:02d}.txt"), ("val", f"testlist{args.split:02d}.txt")):
        path = find_annotation(args, name)
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            rel = PurePosixPath(line.split()[0].replace("\\", "/"))
            label = by_lower.get(rel.parent.name.lower())
            if label is None:
                raise ValueError(f"{path}:{n}: class folder '{rel.parent.name}' is not in {class_file}")
            out.entries.append(Entry(label, rel.stem, split, f"{path}:{n}", stems=(rel.stem,)))
    return out
