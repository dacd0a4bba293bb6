"""The annotation parsers on small mock files: official class order, split rules, one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.prep.annotations import PARSERS, ParseArgs, folder_name


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _parse(name: str, ann: Path | None, videos: Path, **kw):
    return PARSERS[name](ParseArgs(ann, videos, **kw))


def test_every_documented_format_is_registered():
    assert sorted(PARSERS) == ["diving48", "folders", "hacs", "hmdb51", "kinetics", "mit", "ssv2", "ucf101"]


def test_ucf101_split_and_class_index_errors(tmp_path):
    _write(tmp_path / "classInd.txt", "1 A\n2 B\n")
    _write(tmp_path / "trainlist02.txt", "B/v_B_g01_c01.avi 2\n")
    _write(tmp_path / "testlist02.txt", "a/v_A_g02_c01.avi\n")  # class folder matched in any case
    ann = _parse("ucf101", tmp_path, tmp_path, split=2)
    assert [(e.label, e.video_id, e.split) for e in ann.entries] == [("B", "v_B_g01_c01", "train"),
                                                                     ("A", "v_A_g02_c01", "val")]
    _write(tmp_path / "classInd.txt", "1 A\n3 B\n")
    with pytest.raises(ValueError, match=r"classInd.txt:2: expected '<index> <class>' with index 2"):
        _parse("ucf101", tmp_path, tmp_path, split=2)
    _write(tmp_path / "classInd.txt", "1 A\n2 B\n")
    _write(tmp_path / "testlist02.txt", "C/v_C_g02_c01.avi\n")
    with pytest.raises(ValueError, match=r"testlist02.txt:1: class folder 'C' is not in"):
        _parse("ucf101", tmp_path, tmp_path, split=2)


def test_hacs_keeps_positive_clips_of_train_and_val(tmp_path):
    _write(tmp_path / "HACS_clips_v1.1.csv", "classname,youtube_id,subset,start,end,label\n"
           "B,x,training,1,2,1\nB,y,training,1,2,-1\nA,z,validation,0.5,1.5,1\nA,w,testing,0,1,1\n")
    ann = _parse("hacs", tmp_path, tmp_path)
    assert ann.classes == ["A", "B"]
    assert [(e.video_id, e.split, e.start, e.stems, e.trimmed) for e in ann.entries] == [
        ("x", "train", 1.0, ("x", "v_x"), ("x_000001_000002",)), ("z", "val", 0.5, ("z", "v_z"), ("z_000000_000001",))]
    _write(tmp_path / "HACS_clips_v1.1.csv", "classname,youtube_id,start,end\nB,x,1,2\n")
    with pytest.raises(ValueError, match=r"HACS_clips_v1.1.csv:1: header .* lacks \['subset', 'label'\]"):
        _parse("hacs", tmp_path, tmp_path)


def test_kinetics_bad_time_names_the_row(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    _write(tmp_path / "train.csv", header + "a,x,1,2,train\na,y,soon,2,train\n")
    _write(tmp_path / "validate.csv", header)
    with pytest.raises(ValueError, match=r"train.csv:3: time_start 'soon' is not a number"):
        _parse("kinetics", tmp_path, tmp_path, variant=400)


def test_mit_categories_must_be_indexed_from_zero(tmp_path):
    _write(tmp_path / "moments_categories.txt", "a,1\nb,2\n")
    with pytest.raises(ValueError, match="indices are not 0..1"):
        _parse("mit", tmp_path, tmp_path)


def test_diving48_and_ssv2_reject_unknown_labels(tmp_path):
    _write(tmp_path / "Diving48_vocab.json", json.dumps([["Back", "15som", "05Twis", "FREE"]]))
    _write(tmp_path / "Diving48_V2_train.json", json.dumps([{"vid_name": "v", "label": 3}]))
    with pytest.raises(ValueError, match=r"Diving48_V2_train.json\[0\]: label 3 is not a class"):
        _parse("diving48", tmp_path, tmp_path)
    _write(tmp_path / "labels.json", json.dumps({"Moving something up": "0"}))
    _write(tmp_path / "train.json", json.dumps([{"id": "1", "template": "Moving [something] down"}]))
    _write(tmp_path / "validation.json", "[]")
    with pytest.raises(ValueError, match=r"train.json\[0\]: template 'Moving something down' is not in"):
        _parse("ssv2", tmp_path, tmp_path)
    _write(tmp_path / "train.json", "[{")
    with pytest.raises(ValueError, match=r"train.json: not valid JSON"):
        _parse("ssv2", tmp_path, tmp_path)


def test_folders_val_subtree_and_deterministic_fraction(tmp_path):
    for rel in ("train/cat/a.mp4", "train/cat/b.mp4", "val/cat/c.mp4", "val/dog/d.avi", "train/cat/notes.txt"):
        _write(tmp_path / "tree" / rel, "x")
    ann = _parse("folders", None, tmp_path / "tree")
    assert ann.classes == ["cat", "dog"]
    assert sorted((e.label, e.video_id, e.split) for e in ann.entries) == [
        ("cat", "a", "train"), ("cat", "b", "train"), ("cat", "c", "val"), ("dog", "d", "val")]
    for i in range(10):
        _write(tmp_path / "flat" / "cat" / f"v{i}.mp4", "x")
    picks = [{e.video_id for e in _parse("folders", None, tmp_path / "flat", val_fraction=0.3).entries
              if e.split == "val"} for _ in range(2)]
    assert picks[0] == picks[1] and len(picks[0]) == 3


def test_missing_annotations_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="--annotations is required"):
        _parse("ucf101", None, tmp_path)
    with pytest.raises(FileNotFoundError, match="no <class>_test_split1.txt files"):
        _parse("hmdb51", tmp_path, tmp_path)
    assert folder_name("../a/b") == "-a-b"
