"""data.prepare end-to-end: mock official annotation files of every format around tiny videos written by the
project's writer (.avi MPEG-4, .mp4/.mkv H.264, .webm VP8), read back the way the training scripts read them."""
from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

import pytest

from data import prepare
from data.frames_db import read_frames, read_n_frames
from data.labels import dictionary_path, load_records
from datagen import write_clip

SCRIPTS = {"ucf101": "train_ucf101", "hmdb51": "train_hmdb51", "kinetics": "train_kinetics", "hacs": "train_hacs",
           "mit": "train_mit", "diving48": "train_diving48"}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _ucf101(src: Path, ann: Path) -> dict:
    lists = ann / "ucfTrainTestlist"
    _write(lists / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    _write(lists / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                      "HandstandPushups/v_HandStandPushups_g08_c01.avi 2\n")
    _write(lists / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
                                     "HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    _write(lists / "trainlist02.txt", "YoYo/v_YoYo_g01_c01.avi 3\n")
    for i, rel in enumerate(["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
                             "HandstandPushups/v_HandStandPushups_g08_c01.avi",
                             "HandstandPushups/v_HandStandPushups_g01_c01.avi"]):
        write_clip(src / "UCF-101" / rel, seed=i)
    return {"classes": ["ApplyEyeMakeup", "HandstandPushups", "YoYo"],
            "train": [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g08_c01"), ("HandstandPushups", "v_HandStandPushups_g08_c01")],
            "val": [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01"), ("HandstandPushups", "v_HandStandPushups_g01_c01")]}


def _hmdb51(src: Path, ann: Path) -> dict:
    splits = ann / "testTrainMulti_7030_splits"
    _write(splits / "wave_test_split1.txt", "w1.avi 1\nw2.avi 2\nw3.avi 0\n")
    _write(splits / "brush_hair_test_split1.txt", "b1.avi 1 \nb2.avi 2 \n")
    _write(splits / "brush_hair_test_split2.txt", "b1.avi 2\nb2.avi 1\n")
    for i, rel in enumerate(["wave/w1.avi", "wave/w2.avi", "wave/w3.avi", "brush_hair/b1.avi", "brush_hair/b2.avi"]):
        write_clip(src / rel, seed=i)
    return {"classes": ["brush_hair", "wave"], "train": [("brush_hair", "b1"), ("wave", "w1")],
            "val": [("brush_hair", "b2"), ("wave", "w2")]}


def _kinetics(src: Path, ann: Path) -> dict:
    header = "label,youtube_id,time_start,time_end,split\n"
    _write(ann / "train.csv", header + "abseiling,abc,1,3,train\nair drumming,xyz,1,2,train\n")
    _write(ann / "validate.csv", header + "abseiling,def,0,1,val\nair drumming,gone,0,10,val\n")
    write_clip(src / "train" / "abseiling" / "abc_000001_000003.mp4", frames=20)  # trimmed: used whole
    write_clip(src / "xyz.mkv", frames=30, seed=1)  # full video: cut to [1, 2) s = 10 frames
    write_clip(src / "val" / "def.MP4", frames=30, seed=2)
    return {"classes": ["abseiling", "air drumming"], "train": [("abseiling", "abc"), ("air drumming", "xyz")],
            "val": [("abseiling", "def")], "frames": {"abseiling/abc_000001_000003": 20,
                                                     "air drumming/xyz_000001_000002": 10,
                                                     "abseiling/def_000000_000001": 10}}


def _hacs(src: Path, ann: Path) -> dict:
    _write(ann / "HACS_clips_v1.1.csv", "classname,youtube_id,subset,start,end,label\n"
           "Archery,aa,training,0.2,0.6,1\nArchery,aa,training,0.5,0.9,1\nBowling,bb,training,0,1,-1\n"
           "Bowling,bb,validation,1,2,1\nBowling,cc,testing,0,1,1\n")
    write_clip(src / "training" / "Archery" / "v_aa.mp4", frames=10)
    write_clip(src / "validation" / "Bowling" / "v_bb.mp4", frames=30, seed=1)
    return {"classes": ["Archery", "Bowling"], "train": [("Archery", "aa"), ("Archery", "aa")],
            "val": [("Bowling", "bb")], "frames": {"Archery/aa_000000_000000_ms000200_000600": 4,
                                                  "Archery/aa_000000_000000_ms000500_000900": 4,
                                                  "Bowling/bb_000001_000002": 10}}


def _mit(src: Path, ann: Path) -> dict:
    _write(ann / "moments_categories.txt", "running,0\nclapping,1\n")
    _write(ann / "trainingSet.csv", "clapping/yt-a_1.mp4,clapping,3,0\nrunning/flickr-b.mp4,running,2,1\n")
    _write(ann / "validationSet.csv", "clapping/yt-c_2.mp4,clapping,3,0\n")
    for i, rel in enumerate(["training/clapping/yt-a_1.mp4", "training/running/flickr-b.mp4",
                             "validation/clapping/yt-c_2.mp4"]):
        write_clip(src / rel, seed=i)
    return {"classes": ["running", "clapping"], "train": [("clapping", "yt-a_1"), ("running", "flickr-b")],
            "val": [("clapping", "yt-c_2")]}


def _diving48(src: Path, ann: Path) -> dict:
    _write(ann / "Diving48_vocab.json", json.dumps([["Back", "15som", "05Twis", "FREE"],
                                                    ["Forward", "25som", "NoTwis", "PIKE"]]))
    _write(ann / "Diving48_V2_train.json", json.dumps([
        {"vid_name": "-mmq0PT-u8k_00155", "label": 1, "start_frame": 0, "end_frame": 58},
        {"vid_name": "zzz_00001", "label": 0, "start_frame": 3, "end_frame": 40}]))
    _write(ann / "Diving48_V2_test.json", json.dumps([{"vid_name": "val_00002", "label": 0, "start_frame": 0,
                                                       "end_frame": 9}]))
    for i, name in enumerate(["-mmq0PT-u8k_00155", "zzz_00001", "val_00002"]):
        write_clip(src / "rgb" / f"{name}.mp4", seed=i)  # one flat folder
    return {"classes": ["Back_15som_05Twis_FREE", "Forward_25som_NoTwis_PIKE"],
            "train": [("Back_15som_05Twis_FREE", "zzz_00001"), ("Forward_25som_NoTwis_PIKE", "-mmq0PT-u8k_00155")],
            "val": [("Back_15som_05Twis_FREE", "val_00002")]}


def _ssv2(src: Path, ann: Path) -> dict:
    comma = "Putting something, something and something on the table"
    _write(ann / "labels.json", json.dumps({"Pushing something from left to right": "0", comma: "1"}))
    _write(ann / "train.json", json.dumps([
        {"id": "101", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right",
         "placeholders": ["a cup"]},
        {"id": "102", "label": "putting a, b and c on the table",
         "template": "Putting [something], [something] and [something] on the table", "placeholders": ["a", "b", "c"]}]))
    _write(ann / "validation.json", json.dumps([
        {"id": "201", "label": "x", "template": "Pushing [something] from left to right", "placeholders": ["x"]}]))
    for i, vid in enumerate(["101", "102", "201"]):
        write_clip(src / "20bn-something-something-v2" / f"{vid}.webm", seed=i)
    return {"classes": ["Pushing something from left to right", comma],
            "train": [("Pushing something from left to right", "101"), (comma, "102")],
            "val": [("Pushing something from left to right", "201")]}


def _folders(src: Path, ann: Path) -> dict:
    for c, label in enumerate(["cat", "dog", "owl"]):
        for i in range(3):
            write_clip(src / label / f"{label}{i}{['.mp4', '.avi', '.mkv'][i]}", seed=3 * c + i)
    return {"classes": ["cat", "dog", "owl"], "train": None, "val": None}


MOCKS = {"ucf101": _ucf101, "hmdb51": _hmdb51, "kinetics": _kinetics, "hacs": _hacs, "mit": _mit,
         "diving48": _diving48, "ssv2": _ssv2, "folders": _folders}


@pytest.mark.parametrize("name", sorted(MOCKS))
def test_prepare_every_format_gives_the_layout_the_scripts_read(tmp_path, name, capsys):
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "ROOT"
    want = MOCKS[name](src, ann)
    argv = [name, "--videos", str(src), "--out", str(root), "--val-fraction", "0.34"]
    argv += ["--annotations", str(ann)] if name != "folders" else []
    assert prepare.main(argv) == 0
    facts = prepare.DATASETS[name]
    if name in SCRIPTS:  # the names the training script expects
        spec = importlib.import_module(SCRIPTS[name]).SPEC
        assert (facts.folder, facts.train_csv.format(split=1, variant=700), facts.timeslices) == (
            spec.folder, spec.train_csv, spec.timeslices)
        paths = spec.resolve(root)
    else:
        paths = prepare.DATASETS[name]
    labels = root / "labels"
    train_csv, val_csv = (labels / n.format(split=1, variant=700) for n in (facts.train_csv, facts.val_csv))
    dictionary = json.loads(dictionary_path(train_csv).read_text())
    assert list(dictionary) == want["classes"] and list(dictionary.values()) == list(range(len(want["classes"])))
    jpg = root / "data" / facts.folder / "jpg"
    if name in SCRIPTS:
        assert paths.jpg_dir == jpg and paths.train_csv == train_csv
    train, _ = load_records(train_csv, jpg, facts.timeslices)
    val, _ = load_records(val_csv, jpg, facts.timeslices, strict_labels=True)
    for records in (train, val):
        assert all(r.class_index == want["classes"].index(r.label) for r in records)
        assert all(r.path.parent.name == r.label and r.n_frames > 0 for r in records)
    if want["train"] is not None:
        assert sorted((r.label, r.video_id) for r in train) == sorted(want["train"])
        assert sorted((r.label, r.video_id) for r in val) == sorted(want["val"])
    else:  # folders: one of three videos of each class held out, the same on every run
        assert len(train) == 6 and len(val) == 3 and {r.label for r in val} == {"cat", "dog", "owl"}
    for rel, n in want.get("frames", {}).items():
        assert read_n_frames(jpg / rel) == n, rel
    assert read_frames(train[0].path, [0]).shape == (1, 24, 32, 3)


def test_prepare_names_missing_videos_and_re_runs_safely(tmp_path, caplog):
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "ROOT"
    _kinetics(src, ann)
    argv = ["kinetics", "--videos", str(src), "--annotations", str(ann), "--out", str(root), "--variant", "400"]
    with caplog.at_level(logging.INFO):
        assert prepare.main(argv) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"1 CSV rows have no video file under {src} (skipped): {ann / 'validate.csv'}:3 (air drumming/gone)" \
        in warnings
    assert any("Kinetics-400 annotations list 2 classes" in w for w in warnings)
    assert (root / "labels" / "kinetics-400_train.csv").read_text().splitlines()[0] == \
        "label,id,time_start,time_end,split"
    assert "gone" not in (root / "labels" / "kinetics-400_val.csv").read_text()
    caplog.clear()
    assert prepare.main(argv + ["--short-side", "12"]) == 2  # other size: stops, keeps the frames
    assert "--overwrite" in caplog.text
    assert prepare.main(argv + ["--short-side", "12", "--overwrite"]) == 0
    assert read_frames(root / "data" / "Kinetics_videos" / "jpg" / "abseiling" / "def_000000_000001", [0]).shape == \
        (1, 12, 16, 3)


def test_prepare_counts_bad_videos_and_reports_bad_annotations(tmp_path, caplog):
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "ROOT"
    _hmdb51(src, ann)
    (src / "wave" / "w2.avi").write_bytes(b"not a video" * 100)
    argv = ["hmdb51", "--videos", str(src), "--annotations", str(ann), "--out", str(root)]
    assert prepare.main(argv) == 1  # 1 of 4 failed > 1%
    assert "FAILED" in caplog.text and "w2.avi" in caplog.text
    assert prepare.main(argv + ["--max-failed", "30"]) == 0
    caplog.clear()
    assert prepare.main(["ucf101", "--videos", str(src), "--annotations", str(ann), "--out", str(root)]) == 2
    assert "classInd.txt found in it or below" in caplog.text
    _write(ann / "testTrainMulti_7030_splits" / "wave_test_split1.txt", "w1.avi 1\nw2.avi yes\n")
    caplog.clear()
    assert prepare.main(argv) == 2
    assert f"{ann / 'testTrainMulti_7030_splits' / 'wave_test_split1.txt'}:2: expected '<video>.avi <0|1|2>'" \
        in caplog.text
