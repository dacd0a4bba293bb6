"""Label CSV parsing: records, time-slice folder names, file:line errors, class dictionary order and reuse."""
from __future__ import annotations

import errno
import json
import logging

import pytest
from datagen import gradient_frames

from data.catalog import labels as labels_module
from data.catalog.labels import dictionary_path, iter_rows, load_records, split_of, warn_split_overlap
from data.store.frames_db import write_video


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
    with caplog.at_level(logging.INFO, logger="data.catalog.labels"):
        records, classes = load_records(csv, jpg, False)
    assert classes == {"run": 0, "walk": 1, "jump": 2, "swim": 3}  # first appearance, missing videos included
    assert [(r.index, r.video_id, r.class_index, r.n_frames) for r in records] == [
        (0, "a1", 1, 4), (1, "b1", 2, 5), (2, "a2", 1, 3)]
    assert records[1].path == jpg / "jump" / "b1" and records[1].source == f"{csv}:4"
    assert "2 of 5 videos (40.0%) not found" in caplog.text
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
    ("label,id\nwalk,a/b\n", 2, "id 'a/b' cannot be a folder name"),
    ("label,id\nwalk,a\n..,b\n", 3, "label '..' cannot be a folder name"),
    ("label,id\na\\b,x\n", 2, "label 'a\\b' cannot be a folder name"),
    ("label,id\nwalk,.\n", 2, "id '.' cannot be a folder name"),
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
    with caplog.at_level(logging.WARNING, logger="data.catalog.labels"):
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


def test_split_column_is_honoured_and_dropped_rows_counted(tmp_path, caplog):
    jpg = tmp_path / "jpg"
    for vid in ("t1", "t2", "v1"):
        _video(jpg, f"walk/{vid}")
    labels = tmp_path / "labels"
    train = _csv(labels / "hmdb_split1_train.csv",
                 "label,id,split\nwalk,t1,train\nwalk,v1,val\nwalk,t2,training\nwalk,x9,testing\nwalk,t1,train\n")
    with caplog.at_level(logging.INFO, logger="data.catalog.labels"):
        records, _ = load_records(train, jpg, False)
    assert [r.video_id for r in records] == ["t1", "t2"]  # the appended val row is not trained on
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "dropped 2 rows of another split (testing: 1, val: 1); this file keeps split 'train'" in warnings[0]
    assert f"1 duplicate rows kept once, e.g. {train}:6 repeats {train}:2" in warnings[1]
    val = _csv(labels / "hmdb_split1_val.csv", "label,id,split\nwalk,v1,val\nwalk,t1,train\n")
    val_records, _ = load_records(val, jpg, False, strict_labels=True)
    assert [r.video_id for r in val_records] == ["v1"]
    assert split_of("ucf101_split1_val.csv") == "val" and split_of("kinetics-700_train.csv") == "train"
    assert split_of("testlist01.csv") == "val" and split_of("labels.csv") is None


def test_ids_in_both_splits_warn_with_count_and_three_examples(tmp_path, caplog):
    jpg = tmp_path / "jpg"
    ids = ["a", "b", "c", "d", "e"]
    for vid in ids:
        _video(jpg, f"walk/{vid}")
    train = _csv(tmp_path / "s_train.csv", "label,id\n" + "".join(f"walk,{v}\n" for v in ids))
    val = _csv(tmp_path / "s_val.csv", "label,id\nwalk,b\nwalk,d\nwalk,e\nwalk,c\n")
    tr, _ = load_records(train, jpg, False)
    va, _ = load_records(val, jpg, False, strict_labels=True)
    with caplog.at_level(logging.WARNING, logger="data.catalog.labels"):
        assert warn_split_overlap(tr, va, str(val)) == ["b", "d", "e", "c"]
    assert f"{val}: 4 video ids are in both train and val, e.g. b, d, e;" in caplog.text
    caplog.clear()
    assert warn_split_overlap(tr[:1], va, "x") == [] and not caplog.text


def test_colliding_sub_second_slices_get_exact_times(tmp_path):
    csv = _csv(tmp_path / "k_train.csv", "label,youtube_id,time_start,time_end,split\n"
               "golf,g1,0.2,0.7,train\ngolf,g1,0.5,0.9,train\ngolf,g1,0.5,0.9,train\ngolf,g2,3,13,train\n"
               "golf,g3,1.0,2.5,train\n")
    names = [r.rel_path.name for r in iter_rows(csv, True)]
    assert names == ["g1_000000_000000_ms000200_000700", "g1_000000_000000_ms000500_000900",
                     "g1_000000_000000_ms000500_000900", "g2_000003_000013", "g3_000001_000002"]


def test_missing_videos_are_a_warning_and_above_the_limit_an_error(tmp_path, caplog):
    jpg = tmp_path / "jpg"
    for i in range(2):
        _video(jpg, f"walk/v{i}")
    _video(jpg, "jump/moved")  # a row whose label was edited in the CSV: its video is under the old label
    rows = "".join(f"walk,gone{i}\n" for i in range(97))
    csv = _csv(tmp_path / "labels" / "set_train.csv", "label,id\nwalk,v0\nwalk,v1\nwalk,moved\n" + rows)
    with pytest.raises(ValueError, match=r"98 of 100 videos \(98.0%\) not found under .*more than --max-missing 5%"):
        load_records(csv, jpg, False, max_missing=5.0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data.catalog.labels"):
        records, _ = load_records(csv, jpg, False, max_missing=100.0)
    assert [r.video_id for r in records] == ["v0", "v1"]
    warning = next(r.getMessage() for r in caplog.records if "not found" in r.getMessage())
    assert warning.startswith(f"{csv}: 98 of 100 videos (98.0%) not found under {jpg}, e.g. {csv}:4 (walk/moved, "
                              "stored under label 'jump': the CSV's label differs)")


def test_read_only_labels_folder_keeps_the_dictionary_in_memory(tmp_path, caplog, monkeypatch):
    def read_only(path, dictionary):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(labels_module, "write_dictionary", read_only)
    jpg = tmp_path / "jpg"
    _video(jpg, "walk/v0")
    _video(jpg, "jump/v1")
    train = _csv(tmp_path / "labels" / "set_train.csv", "label,id\nwalk,v0\njump,v1\n")
    val = _csv(tmp_path / "labels" / "set_val.csv", "label,id\njump,v1\n")
    with caplog.at_level(logging.WARNING, logger="data.catalog.labels"):
        _, classes = load_records(train, jpg, False)
        records, _ = load_records(val, jpg, False, dictionary=classes, strict_labels=True)
    assert classes == {"walk": 0, "jump": 1} and [r.class_index for r in records] == [1]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'labels' / 'set_dictionary.json'}: cannot write "
                                                   "the class dictionary (Read-only file system); using it from memory")


@pytest.mark.parametrize("dictionary, what", [({"walk": 0, "jump": 0}, "'jump' and 'walk' share 0"),
                                              ({"walk": 0, "jump": 2}, "indices [2]")])
def test_a_dictionary_whose_indices_repeat_or_skip_is_refused(tmp_path, dictionary, what):
    """Two labels on one index would train as one class; with a gap, the next new label takes a used index."""
    jpg = tmp_path / "jpg"
    for rel in ("walk/v0", "jump/v1", "run/v2"):
        _video(jpg, rel)
    train = _csv(tmp_path / "labels" / "set_train.csv", "label,id\nwalk,v0\njump,v1\nrun,v2\n")
    dict_file = dictionary_path(train)
    dict_file.write_text(json.dumps(dictionary))
    with pytest.raises(ValueError) as err:
        load_records(train, jpg, False)
    assert str(err.value) == (f"{dict_file}: class indices must be 0..1, each once ({what}); fix the JSON or delete "
                              "it to rebuild it from the train CSV")
