"""Diving-48 V2: ``Diving48_vocab.json`` (48 × [takeoff, somersault, twist, flight]) and
``Diving48_V2_{train,test}.json`` (``vid_name``, ``label``, ``start_frame``, ``end_frame``), one flat folder of
trimmed clips ``<vid_name>.mp4``. ``start_frame``/``end_frame`` refer to the source video and are not needed."""
from __future__ import annotations

from data.prep.annotations.base import Annotations, Entry, ParseArgs, find_annotation, folder_name, read_json, register


@register("diving48")
def parse(args: ParseArgs) -> Annotations:
    """Class ``i`` is vocabulary entry ``i``, named by its four parts (``Back_15som_05Twis_FREE``)."""
    vocab_file = find_annotation(args, "Diving48_vocab.json")
    vocab = read_json(vocab_file)
    if not isinstance(vocab, list) or not all(isinstance(v, list) for v in vocab):
        raise ValueError(f"{vocab_file}: expected a list of [takeoff, somersault, twist, flight] lists")
    classes = [folder_name("_".join(str(part) for part in parts)) for parts in vocab]
    if len(set(classes)) != len(classes):
        classes = [f"{i:02d}_{name}" for i, name in enumerate(classes)]  # keep names unique
    out = Annotations(classes)
    for split, name in (("train", "Diving48_V2_train.json"), ("val", "Diving48_V2_test.json")):
        path = find_annotation(args, name)
        items = read_json(path)
        if not isinstance(items, list):
            raise ValueError(f"{path}: expected a list of {{vid_name, label, ...}} objects")
        for n, item in enumerate(items):
            where = f"{path}[{n}]"
            try:
                vid, label = str(item["vid_name"]), int(item["label"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{where}: expected an object with 'vid_name' and an integer 'label'") from None
            if not 0 <= label < len(classes):
                raise ValueError(f"{where}: label {label} is not a class of {vocab_file} (0..{len(classes) - 1})")
            out.entries.append(Entry(classes[label], vid, split, where, stems=(vid,)))
    return out
