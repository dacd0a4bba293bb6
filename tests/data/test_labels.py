"""Label CSV parsing: records, time-slice folder names, file:line errors, class dictionary order and reuse."""
from __future__ import annotations

import json
import logging

import pytest

from data.frames_db import write_video
from data.labels import dictionary_path, iter_rows, load_records
from datagen import gradient_frames


def _csv(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _video(jpg, rel, n=3):
    write_video(jpg / rel, list(gradient_frames(n, 16, 16)))


def test_records_order_dictionary_and_missing(tmp_path, caplog):
    jpg = tmp_path / "jpg"
    _video(jpg, "walk/a1", 4)
    _video(jpg, "jump/b1", 5)
    _video(jpg, "walk/a2", 3)
    csv = _csv(tmp_path / "labels" / "mini_train.csv",
               "label,id,split\nrun,zz,train\nwalk,a1,train\njump,b1,train\nwalk,a2,train\nswim,gone,train\n")
    with caplog.at_level(logging.INFO, logger="data.labels"):
        records, classes = load_records(csv, jpg, False)
    assert classes == {"run": 0, "walk": 1, "jump": 2, "swim": 3}  # first appearance, missing videos included
    assert [(r.index, r.video_id, r.class_index, r.n_frames) for r in records] == [
        (0, "a1", 1, 4), (1, "b1", 2, 5), (2, "a2", 1, 3)]
    assert records[1].path == jpg / "jump" / "b1" and records[1].source == f"{csv}:4"
    assert "2 of 5 videos not found" in caplog.text
    saved = tmp_path / "labels" / "mini_dictionary.json"
    assert json.loads(saved.read_text()) == classes


def test_val_reuses_train_dictionary_and_rejects_unknown_labels(tmp_path):
    jpg = tmp_path / "jpg"
    _video(jpg, "jump/v1")
    _video(jpg, "walk/v2")
    labels = tmp_path / "labels"
    _csv(labels / "set_train.csv", "label,id\nwalk,t1\njump,t2\n")
    val = _csv(labels / "set_val.csv", "label,id\njump,v1\nwalk,v2\n")
    _, train_classes = load_records(labels / "set_train.csv", jpg, False)
    records, classes = load_records(val, jpg, False, strict_labels=True)  # loads set_dictionary.json
    assert classes == train_classes == {"walk": 0, "jump": 1}
    assert [r.class_index for r in records] == [1, 0]
    bad = _csv(labels / "other_val.csv", "label,id\njump,v1\nfly,v2\n")
    with pytest.raises(ValueError, match=f"^{bad}:3: label 'fly' is not in the class dictionary"):
        load_records(bad, jpg, False, dictionary=train_classes, strict_labels=True)


def test_timeslices_youtube_id_and_split_filter(tmp_path):
    jpg = tmp_path / "jpg"
    _video(jpg, "bowling/abc_000012_000022")
    _video(jpg, "bowling/xyz_000003_000013")
    csv = _csv(tmp_path / "k_train.csv", "label,youtube_id,time_start,time_end,split,is_cc\n"
               "bowling,abc,12.9,22.0,train,0\nbowling, xyz ,3,13,val,0\n")
    records, _ = load_records(csv, jpg, True, split="val", save_dictionary=False)
    assert [(r.video_id, r.start, r.end) for r in records] == [("xyz", 3.0, 13.0)]
    assert records[0].path.name == "xyz_000003_000013" and not (tmp_path / "k_dictionary.json").exists()
    assert [r.rel_path.name for r in iter_rows(csv, True)] == ["abc_000012_000022", "xyz_000003_000013"]


@pytest.mark.parametrize("text, line, what", [
    ("label,name\nx,y\n", 1, "lacks column"),
    ("label,id\nwalk,a,extra\n", 2, "3 fields for 2 columns"),
    ("label,id\nwalk,a\n,b\n", 3, "empty label"),
    ("label,id,time_start,time_end\nwalk,a,1,2\nwalk,b,soon,3\n", 3, "time_start 'soon' is not a number"),
    ("label,id\nwalk,a/b\n", 2, "'/' in label or id"),
])
def test_malformed_rows_name_file_and_line(tmp_path, text, line, what):
    csv = _csv(tmp_path / "bad_train.csv", text)
    with pytest.raises(ValueError) as info:
        load_records(csv, tmp_path / "jpg", "time_start" in text)
    assert str(info.value).startswith(f"{csv}:{line}: ") and what in str(info.value)


def test_missing_csv_and_time_columns(tmp_path):
    with pytest.raises(FileNotFoundError, match="label CSV not found"):
        load_records(tmp_path / "none_train.csv", tmp_path, False)
    csv = _csv(tmp_path / "u_train.csv", "label,id,split\nwalk,a,train\n")
    with pytest.raises(ValueError, match="lacks column.*time_start"):
        list(iter_rows(csv, True))


def test_n_frames_fallback_and_broken_videos_are_skipped(tmp_path, caplog):
    jpg = tmp_path / "jpg"
    _video(jpg, "a/ok", 4)
    (jpg / "a" / "ok" / "n_frames").unlink()  # counted from the table instead
    (jpg / "a" / "empty").mkdir()  # neither database nor count
    csv = _csv(tmp_path / "s_train.csv", "label,id\na,ok\na,empty\n")
    with caplog.at_level(logging.WARNING, logger="data.labels"):
        records, _ = load_records(csv, jpg, False)
    assert [(r.video_id, r.n_frames) for r in records] == [("ok", 4)]
    assert "1 unreadable videos skipped" in caplog.text and "data.check" in caplog.text


@pytest.mark.parametrize("name, expected", [
    ("HACS_clips_v1.1_train.csv", "HACS_clips_v1.1_dictionary.json"),
    ("HACS_clips_v1.1_val.csv", "HACS_clips_v1.1_dictionary.json"),
    ("kinetics-700_train.csv", "kinetics-700_dictionary.json"),
    ("Moments_in_Time_val.csv", "Moments_in_Time_dictionary.json"),
    ("interval_val.csv", "interval_dictionary.json"),
    ("mytrain.csv", "mydictionary.json"),
    ("labels.csv", "labels_dictionary.json"),
])
def test_dictionary_path_uses_the_file_name_only(tmp_path, name, expected):
    parent = tmp_path / "train_val_test" / "labels"  # the original split the whole path on 'train'
    assert dictionary_path(parent / name) == parent / expected
