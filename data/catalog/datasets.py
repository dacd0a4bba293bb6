"""The data-set registry: every data set's facts once, as a :class:`~data.catalog.spec.DatasetSpec`, looked up by name.

``get_dataset('hacs')``, ``get_dataset('kinetics-400')`` (a variant), ``list_datasets()``. The
``train_<dataset>.py`` scripts, ``evaluate.py --spec``, ``data.prep.prepare``, the tests and docs/training.md all
enumerate this registry. A spec's ``defaults`` override the run configuration's own defaults
(`train.config`), which are the original HACS script's; the engine checks each key against the
configuration's fields when it applies them, so a typo (``clip_szie``) fails with the close matches.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from data.catalog.spec import DatasetSpec

DATASETS: dict[str, DatasetSpec] = {}
ALIASES: dict[str, str] = {}

# The original scripts' defaults of the small data sets (UCF-101, HMDB-51, Diving-48): no multigrid cycles.
_SMALL = {"clip_size": 256, "val_clip_length": 16, "val_clip_size": 256, "train_frame_interval": [2],
          "batch_size": 32, "lr_steps": [15, 30, 40], "end_epoch": 100, "long_cycles": False,
          "short_cycles": False}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_dataset(spec: DatasetSpec, *aliases: str, key: str | None = None) -> DatasetSpec:
    """Add ``spec`` under ``key`` (default: its lower-cased name) and ``aliases``.

    A duplicate name raises a one-line ``ValueError``.
    """
    main = _key(key or spec.name)
    for name in (main, *map(_key, aliases)):
        if name in DATASETS or name in ALIASES:
            raise ValueError(f"data set name '{name}' is registered twice")
    DATASETS[main] = spec
    for alias in aliases:
        ALIASES[_key(alias)] = main
    return spec


def list_datasets() -> list[str]:
    """Registered data-set names (lower case, without aliases), sorted."""
    return sorted(DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as ``name`` (case-insensitive; ``kinetics-400`` = Kinetics variant 400).

    An unknown name raises a one-line ``ValueError`` listing close matches.
    """
    key = _key(name)
    key = ALIASES.get(key, key)
    if key in DATASETS:
        return DATASETS[key]
    base, _, variant = key.rpartition("-")
    base = ALIASES.get(base, base)
    if base in DATASETS and variant.isdigit() and DATASETS[base].variants:
        return DATASETS[base].with_variant(int(variant))
    names = list_datasets() + sorted(ALIASES)
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown data set '{name}'{hint} (registered: {', '.join(list_datasets())}; "
                     "Kinetics takes a variant: kinetics-400)")


def spec_from_dict(data: dict) -> DatasetSpec:
    """A spec saved in a checkpoint by ``DatasetSpec.to_dict`` (unknown keys ignored)."""
    return DatasetSpec(**{k: v for k, v in data.items() if k in DatasetSpec.__dataclass_fields__})


HACS = register_dataset(DatasetSpec(
    name="HACS", num_classes=200, folder="HACS_videos", train_csv="HACS_clips_v1.1_train.csv",
    val_csv="HACS_clips_v1.1_val.csv", timeslices=True, augmentation="large", script="train_hacs.py",
    url="http://hacs.csail.mit.edu/",
    # the configuration's defaults are this script's; only the validation clip differs from them
    defaults={"dataset": "HACS", "val_clip_length": 16, "val_clip_size": 256}))

KINETICS = register_dataset(DatasetSpec(
    name="KINETICS-700", num_classes=700, folder="Kinetics_videos", train_csv="kinetics-700_train.csv",
    val_csv="kinetics-700_val.csv", timeslices=True, augmentation="large", script="train_kinetics.py",
    url="https://deepmind.com/research/open-source/kinetics",
    defaults={"dataset": "Kinetics", "variant": 700, "val_clip_length": 16, "val_clip_size": 256,
              "train_frame_interval": [4, 5, 6], "val_frame_interval": 5, "batch_size": 32, "lr_base": 0.05,
              "lr_steps": [40, 70, 95], "end_epoch": 130},
    variants={200: 200, 400: 400, 600: 600, 700: 700}), key="kinetics")

MOMENTS = register_dataset(DatasetSpec(
    name="MOMENTS", num_classes=339, folder="Moments_in_Time_videos", train_csv="Moments_in_Time_train.csv",
    val_csv="Moments_in_Time_val.csv", timeslices=False, augmentation="large", script="train_mit.py",
    url="http://moments.csail.mit.edu/",
    defaults={"dataset": "Moments", "val_clip_length": 16, "val_clip_size": 256, "train_frame_interval": [3, 4],
              "val_frame_interval": 3, "lr_steps": [25, 50, 70], "end_epoch": 110}), "mit", "moments-in-time")

UCF101 = register_dataset(DatasetSpec(
    name="UCF101", num_classes=101, folder="UCF101_videos", train_csv="ucf101_split1_train.csv",
    val_csv="ucf101_split1_val.csv", timeslices=False, augmentation="small", script="train_ucf101.py",
    url="https://www.crcv.ucf.edu/data/UCF101.php", defaults={"dataset": "UCF101", **_SMALL}), "ucf-101")

HMDB51 = register_dataset(DatasetSpec(
    name="HMDB51", num_classes=51, folder="HMDB51_videos", train_csv="hmdb_split1_train.csv",
    val_csv="hmdb_split1_val.csv", timeslices=False, augmentation="small", script="train_hmdb51.py",
    url="https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/",
    defaults={"dataset": "HMDB51", **_SMALL}), "hmdb-51", "hmdb")

DIVING48 = register_dataset(DatasetSpec(
    name="DIVING48", num_classes=48, folder="Diving48_videos", train_csv="diving48_train.csv",
    val_csv="diving48_val.csv", timeslices=False, augmentation="small", script="train_diving48.py",
    url="http://www.svcl.ucsd.edu/projects/resound/dataset.html",
    defaults={"dataset": "DIVING48", **_SMALL}), "diving-48")

# The built-in synthetic set (data.prep.synthetic): eight motion classes. Defaults are the CPU demo's
# (train_synthetic.py): 8-frame 32² clips every 2nd frame, batch 32, lr 0.005 decayed after epoch 7, 9 epochs
# (docs/training.md#the-demo-recipe). At every 4th frame training stalls for epochs at the motion axes; lr 0.01 and
# 0.02 leave chance later.
SYNTHETIC = register_dataset(DatasetSpec(
    name="SYNTHETIC", num_classes=8, folder="Synthetic_videos", train_csv="synthetic_train.csv",
    val_csv="synthetic_val.csv", timeslices=False, augmentation="none", script="train_synthetic.py",
    defaults={"dataset": "synthetic_data", "network": "srtg_r3d_18", "clip_length": 8, "clip_size": 32,
              "train_frame_interval": [2], "val_frame_interval": 2, "batch_size": 32, "long_cycles": False,
              "short_cycles": False, "lr_base": 0.005, "lr_steps": [7], "end_epoch": 9, "save_frequency": 9,
              "workers": 1, "log_interval": 10}))

# Defaults of a data set that is not registered (``train.py --dataset ROOT``): a small one, trained from its
# own label files: no multigrid, 16x112² clips, 30 epochs decayed at 20 and 25.
GENERIC_DEFAULTS = {"clip_size": 112, "train_frame_interval": [2], "batch_size": 16, "lr_base": 0.01,
                    "lr_steps": [20, 25], "end_epoch": 30, "long_cycles": False, "short_cycles": False}


def _sliced(csv_path: Path, jpg: Path) -> bool:
    """True when the first row's video is stored as a time slice ``<id>_<start:06d>_<end:06d>``."""
    import csv  # noqa: PLC0415

    with open(csv_path, newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh), None) or {}
    vid = row.get("youtube_id") or row.get("id")
    if not row.get("time_start") or not vid:
        return False
    try:
        start, end = int(float(row["time_start"])), int(float(row.get("time_end") or 0))
    except ValueError:
        return False
    return (jpg / row.get("label", "") / f"{vid}_{start:06d}_{end:06d}").is_dir()


GENERIC_FORMATS = ("folders",)  # data.prep.prepare formats that are not one data set: named after ``root``


def discover_dataset(root: str | Path) -> DatasetSpec:
    """The spec of a prepared data set at ``root`` (``data.prep.prepare`` layout): ``root/labels/<p>train.csv`` +
    ``<p>val.csv`` + ``<p>dictionary.json`` and ``root/data/<folder>/jpg``; classes come from the dictionary.
    Its name is the CSV prefix (``ssv2``), or for a generic format (``folders``) the name of ``root`` itself, so
    two such data sets (or a fine-tune on one) get their own ``results/<NAME>/``.

    Raises a one-line ``FileNotFoundError`` naming what is missing.
    """
    import json  # noqa: PLC0415

    root = Path(root)
    labels, data = root / "labels", root / "data"
    trains = sorted(labels.glob("*train.csv")) if labels.is_dir() else []
    folders = sorted(p.parent.name for p in data.glob("*/jpg") if p.is_dir()) if data.is_dir() else []
    if len(trains) != 1 or len(folders) != 1:
        raise FileNotFoundError(f"{root}: expected one labels/<name>train.csv and one data/<folder>/jpg (a data set "
                                f"written by `python -m data.prepare`), found {len(trains)} CSV(s) and "
                                f"{len(folders)} folder(s)")
    prefix = trains[0].name[:-len("train.csv")]
    val, dictionary = labels / f"{prefix}val.csv", labels / f"{prefix}dictionary.json"
    for path in (val, dictionary):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; re-run `python -m data.prepare` for {root}")
    classes = json.loads(dictionary.read_text(encoding="utf-8"))
    fmt = prefix.rstrip("_-")
    name = (root.resolve().name if fmt.lower() in GENERIC_FORMATS or not fmt else fmt).upper()
    timeslices = _sliced(trains[0], data / folders[0] / "jpg")
    return DatasetSpec(name=name, num_classes=max(1, len(classes)), folder=folders[0], train_csv=trains[0].name,
                       val_csv=val.name, timeslices=timeslices, augmentation="small", script="train.py",
                       defaults={"dataset": str(root), **GENERIC_DEFAULTS})
