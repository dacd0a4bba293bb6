"""Something-Something V2: ``labels.json`` (``{template: "index"}``) and ``train.json`` / ``validation.json``
(``[{"id", "label", "template", "placeholders"}]``), one flat folder of ``<id>.webm``."""
from __future__ import annotations

from data.prep.annotations.base import Annotations, Entry, ParseArgs, find_annotation, folder_name, read_json, register


def _class_of(template: str) -> str:
    return template.replace("[", "").replace("]", "").strip()


@register("ssv2")
def parse(args: ParseArgs) -> Annotations:
    """Classes in ``labels.json`` index order; a video's class is its template without the brackets."""
    labels_file = find_annotation(args, "labels.json", "something-something-v2-labels.json")
    labels = read_json(labels_file)
    if not isinstance(labels, dict):
        raise ValueError(f"{labels_file}: expected an object {{template: index}}")
    by_index = {int(i): _class_of(t) for t, i in labels.items()}
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError(f"{labels_file}: indices are not 0..{len(by_index) - 1}")
    names = {c: folder_name(c) for c in by_index.values()}
    out = Annotations([names[by_index[i]] for i in range(len(by_index))])
    for split, files in (("train", ("train.json", "something-something-v2-train.json")),
                         ("val", ("validation.json", "something-something-v2-validation.json"))):
        path = find_annotation(args, *files)
        items = read_json(path)
        for n, item in enumerate(items if isinstance(items, list) else []):
            where = f"{path}[{n}]"
            try:
                vid, template = str(item["id"]), _class_of(str(item["template"]))
            except (KeyError, TypeError):
                raise ValueError(f"{where}: expected an object with 'id' and 'template'") from None
            if template not in names:
                raise ValueError(f"{where}: template '{template}' is not in {labels_file}")
            out.entries.append(Entry(names[template], vid, split, where, stems=(vid,)))
    return out
