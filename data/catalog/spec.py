"""Per-dataset facts as data (:class:`DatasetSpec`) and where a data set lives on disk (:class:`DatasetPaths`).

Layout (the original's): ``<root>/data/<folder>/jpg/<label>/<video_id>/frames.db`` + ``n_frames`` and the label
CSVs in ``<root>/labels/``. The specs of the known data sets are registered in `data.catalog.datasets`;
:meth:`DatasetSpec.with_variant` gives another variant (Kinetics-400) or a one-line error listing them.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

# ``--source``: the SQLite frame store (jpg/, the default) or the video files listed in ``videos.json`` beside
# jpg/ (`data.catalog.video_sources`).
SOURCES = ("store", "video")
MANIFEST_NAME = "videos.json"
# Augmentation policies of data.pipeline.video_transforms.build_transform (the operations are
# data.pipeline.video_augment.AUGMENTATIONS).
AUGMENTATION_POLICIES = ("large", "small", "none")


@dataclass(frozen=True)
class DatasetPaths:
    """Resolved locations: frames under ``jpg_dir``, label CSVs (and the dictionary JSON) in ``labels_dir``."""

    root: Path
    jpg_dir: Path
    labels_dir: Path
    train_csv: Path
    val_csv: Path


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: class count, folder and CSV names, time-slice naming, augmentation policy, CLI defaults.

    ``defaults`` override the run configuration's defaults (keys are `train.config` field names, e.g.
    ``clip_size``; checked when the spec is registered); ``variants`` maps a variant number (Kinetics
    200/400/600/700) to its class count; ``script`` is the ``train_<dataset>.py`` that trains it.
    """

    name: str
    num_classes: int
    folder: str
    train_csv: str
    val_csv: str
    timeslices: bool = False
    augmentation: str = "large"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    variants: Mapping[int, int] = field(default_factory=dict)
    script: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"DatasetSpec '{self.name}': num_classes must be >= 1, got {self.num_classes}")
        if self.augmentation not in AUGMENTATION_POLICIES:
            raise ValueError(f"DatasetSpec '{self.name}': augmentation '{self.augmentation}' is not one of "
                             f"{', '.join(AUGMENTATION_POLICIES)}")
        for attr in ("folder", "train_csv", "val_csv"):
            if not getattr(self, attr) or "/" in getattr(self, attr):
                raise ValueError(f"DatasetSpec '{self.name}': {attr} must be a bare name, got '{getattr(self, attr)}'")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "variants", MappingProxyType(dict(self.variants)))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (saved in checkpoints, so evaluation knows the data set without its script)."""
        return {f: (dict(v) if isinstance(v := getattr(self, f), Mapping) else v) for f in self.__dataclass_fields__}

    def with_variant(self, variant: int) -> DatasetSpec:
        """The spec of another variant: ``KINETICS-700`` → ``KINETICS-400`` with ``kinetics-400_*.csv``, 400 classes."""
        if not self.variants:
            raise ValueError(f"dataset '{self.name}' has no variants")
        if variant not in self.variants:
            raise ValueError(f"dataset '{self.name}' has no variant {variant}; choose one of "
                             f"{', '.join(str(v) for v in sorted(self.variants))}")
        current = next((v for v in self.variants if re.search(rf"(?<!\d){v}(?!\d)", self.name)), None)
        if current is None:
            raise ValueError(f"dataset name '{self.name}' does not contain one of its variants {sorted(self.variants)}")
        swap = lambda s: re.sub(rf"(?<!\d){current}(?!\d)", str(variant), s)  # noqa: E731
        return replace(self, name=swap(self.name), train_csv=swap(self.train_csv), val_csv=swap(self.val_csv),
                       num_classes=self.variants[variant])

    def resolve(self, dataset_arg: str | Path, source: str = "store") -> DatasetPaths:
        """Find the frames (``source`` ``'video'``: the video list) and labels for the ``--dataset`` argument (rules
        in :func:`resolve_paths`)."""
        return resolve_paths(self, dataset_arg, source)


def _has_csv(labels: Path, spec: DatasetSpec) -> bool:
    return (labels / spec.train_csv).is_file() or (labels / spec.val_csv).is_file()


def manifest_path(jpg_dir: str | Path) -> Path:
    """The video list of the data set whose frame store is (or would be) ``jpg_dir``."""
    return Path(jpg_dir).parent / MANIFEST_NAME


def _has_frames(jpg: Path, source: str) -> bool:
    """The frame store ``jpg/`` exists, or for ``--source video`` the video list beside it."""
    if source not in SOURCES:
        raise ValueError(f"--source '{source}' is not one of {', '.join(SOURCES)}")
    return jpg.is_dir() if source == "store" else manifest_path(jpg).is_file()


def resolve_paths(spec: DatasetSpec, dataset_arg: str | Path, source: str = "store") -> DatasetPaths:
    """Resolve ``dataset_arg`` to :class:`DatasetPaths`; the first rule whose jpg dir and a CSV exist wins.

    With ``source='video'`` the video list ``videos.json`` beside the jpg dir stands for the jpg dir
    (`data.catalog.video_sources`), which need not exist.

    1. the original rule: root = the part before the first ``/data/`` (all of it if none),
       jpg = ``<root>/data/<folder>/jpg``, labels = ``<root>/labels``;
    2. ``<arg>/jpg`` exists: labels in ``<arg>/labels``, ``<arg>/../labels`` or ``<arg>/../../labels``;
    3. ``<arg>/data/<folder>/jpg`` with ``<arg>/labels``.
    Raises one-line ``FileNotFoundError`` listing every location tried.
    """
    arg = str(dataset_arg)
    text = arg.replace("\\", "/")
    root = Path(text.split("/data/", 1)[0]) if "/data/" in text else Path(text)
    candidates = [(root, root / "data" / spec.folder / "jpg", [root / "labels"])]
    base = Path(arg)
    candidates.append((base, base / "jpg", [base / "labels", base.parent / "labels", base.parent.parent / "labels"]))
    candidates.append((base, base / "data" / spec.folder / "jpg", [base / "labels"]))
    tried: list[str] = []
    for root_dir, jpg, label_dirs in candidates:
        for labels in label_dirs:
            frames = jpg if source == "store" else manifest_path(jpg)
            where = f"{frames} + {labels}/{{{spec.train_csv},{spec.val_csv}}}"
            if where in tried:
                continue
            tried.append(where)
            if _has_frames(jpg, source) and _has_csv(labels, spec):
                return DatasetPaths(root=root_dir, jpg_dir=jpg, labels_dir=labels,
                                    train_csv=labels / spec.train_csv, val_csv=labels / spec.val_csv)
    if source == "video":
        raise FileNotFoundError(f"dataset {spec.name} not found for --dataset '{arg}' --source video; tried: "
                                f"{'; '.join(tried)} (list the videos with `python -m data.prepare NAME --videos SRC "
                                "--out <root> --no-convert`)")
    raise FileNotFoundError(f"dataset {spec.name} not found for --dataset '{arg}'; tried: {'; '.join(tried)} "
                            "(convert videos with `python -m data.convert videos SRC <root>/data/"
                            f"{spec.folder}` and put the CSVs in <root>/labels)")
