"""DatasetSpec validation, variants and the three --dataset resolution rules."""
from __future__ import annotations

from pathlib import Path

import pytest
from datagen import write_clip

from data.catalog.datasets import discover_dataset
from data.catalog.spec import DatasetSpec
from data.prep import prepare
from train.engine.cli import parse_config

HACS = DatasetSpec(name="HACS", num_classes=200, folder="HACS_videos", train_csv="HACS_clips_v1.1_train.csv",
                   val_csv="HACS_clips_v1.1_val.csv", timeslices=True, augmentation="large")
KINETICS = DatasetSpec(name="KINETICS-700", num_classes=700, folder="Kinetics_videos",
                       train_csv="kinetics-700_train.csv", val_csv="kinetics-700_val.csv", timeslices=True,
                       variants={200: 200, 400: 400, 600: 600, 700: 700})


def _layout(jpg, labels, spec=HACS, csv="train_csv"):
    jpg.mkdir(parents=True)
    labels.mkdir(parents=True, exist_ok=True)
    (labels / getattr(spec, csv)).write_text("label,youtube_id,time_start,time_end,split\n")


def test_rule1_original_root_before_data(tmp_path):
    _layout(tmp_path / "ds" / "data" / "HACS_videos" / "jpg", tmp_path / "ds" / "labels", csv="val_csv")
    for arg in (tmp_path / "ds", f"{tmp_path}/ds/data/HACS_videos", f"{tmp_path}/ds/data/anything/else"):
        paths = HACS.resolve(arg)
        assert paths.root == tmp_path / "ds" and paths.jpg_dir == tmp_path / "ds/data/HACS_videos/jpg"
        assert paths.labels_dir == tmp_path / "ds" / "labels"
        assert paths.train_csv.name == "HACS_clips_v1.1_train.csv" and paths.val_csv.is_file()


@pytest.mark.parametrize("labels_rel", ["labels", "../labels", "../../labels"])
def test_rule2_jpg_inside_argument(tmp_path, labels_rel):
    base = tmp_path / "x" / "frames"
    _layout(base / "jpg", (base / labels_rel).resolve())
    paths = HACS.resolve(base)
    assert paths.jpg_dir == base / "jpg" and paths.train_csv.is_file()


def test_error_lists_every_location_tried(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        HACS.resolve(tmp_path / "nowhere")
    msg = str(info.value)
    assert "\n" not in msg and msg.count("HACS_clips_v1.1_train.csv") == 4
    assert f"{tmp_path}/nowhere/jpg" in msg and "python -m data.convert" in msg
    _layout(tmp_path / "nolabels" / "jpg", tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        HACS.resolve(tmp_path / "nolabels")


def test_variants_and_validation():
    k4 = KINETICS.with_variant(400)
    assert (k4.name, k4.num_classes, k4.train_csv, k4.val_csv) == (
        "KINETICS-400", 400, "kinetics-400_train.csv", "kinetics-400_val.csv")
    assert k4.with_variant(700) == KINETICS
    with pytest.raises(ValueError, match="no variant 500; choose one of 200, 400, 600, 700"):
        KINETICS.with_variant(500)
    with pytest.raises(ValueError, match="has no variants"):
        HACS.with_variant(400)
    with pytest.raises(ValueError, match="augmentation 'huge'"):
        DatasetSpec("X", 2, "X_videos", "x_train.csv", "x_val.csv", augmentation="huge")
    with pytest.raises(ValueError, match="num_classes"):
        DatasetSpec("X", 0, "X_videos", "x_train.csv", "x_val.csv")
    with pytest.raises(TypeError):
        HACS.defaults["clip_size"] = 1  # read-only mapping


def test_rule3_when_the_path_itself_contains_data(tmp_path):
    base = tmp_path / "data" / "mine"  # rule 1 would cut the root at <tmp>/ and miss it
    _layout(base / "data" / "HACS_videos" / "jpg", base / "labels")
    paths = HACS.resolve(base)
    assert paths.root == base and paths.jpg_dir == base / "data" / "HACS_videos" / "jpg"


def test_folders_data_sets_are_named_after_their_folder(tmp_path):
    names = []
    for name in ("birds", "cars"):
        for label in ("a", "b"):
            for i in range(2):
                write_clip(tmp_path / f"{name}_videos" / label / f"{label}{i}.mp4", frames=4, seed=i)
        assert prepare.main(["folders", "--videos", str(tmp_path / f"{name}_videos"), "--out",
                             str(tmp_path / name)]) == 0
        spec = discover_dataset(tmp_path / name)
        names.append((spec.name, parse_config(spec, ["--dataset", str(tmp_path / name)]).results_dir().parent))
    assert names == [("BIRDS", Path("results/BIRDS")), ("CARS", Path("results/CARS"))]
