"""data.prep.prepare end-to-end: mock official annotation files of every format around tiny videos written by the
project's writer (.avi MPEG-4, .mp4/.mkv H.264, .webm VP8), read back the way the training scripts read them."""
from __future__ import annotations

import importlib
import json
import logging

import pytest
from datagen import write_clip
from mock_downloads import MOCKS

from data.catalog.labels import dictionary_path, load_records
from data.prep import prepare
from data.store.frames_db import read_frames, read_n_frames

SCRIPTS = {"ucf101": "train_ucf101", "hmdb51": "train_hmdb51", "kinetics": "train_kinetics", "hacs": "train_hacs",
           "mit": "train_mit", "diving48": "train_diving48"}


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
    MOCKS["kinetics"](src, ann)
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
    MOCKS["hmdb51"](src, ann)
    (src / "wave" / "w2.avi").write_bytes(b"not a video" * 100)
    argv = ["hmdb51", "--videos", str(src), "--annotations", str(ann), "--out", str(root)]
    assert prepare.main(argv) == 1  # 1 of 4 failed > 1%
    assert "FAILED" in caplog.text and "w2.avi" in caplog.text
    assert prepare.main(argv + ["--max-failed", "30"]) == 0
    caplog.clear()
    assert prepare.main(["ucf101", "--videos", str(src), "--annotations", str(ann), "--out", str(root)]) == 2
    assert "classInd.txt found in it or below" in caplog.text
    (ann / "testTrainMulti_7030_splits" / "wave_test_split1.txt").write_text("w1.avi 1\nw2.avi yes\n")
    caplog.clear()
    assert prepare.main(argv) == 2
    assert f"{ann / 'testTrainMulti_7030_splits' / 'wave_test_split1.txt'}:2: expected '<video>.avi <0|1|2>'" \
        in caplog.text


def test_folders_videos_sharing_a_name_are_all_stored_under_unique_ids(tmp_path, caplog):
    src, root = tmp_path / "videos", tmp_path / "ROOT"
    lengths = {"a/clip.mp4": 5, "b/s0.mp4": 6, "b/s0.mov": 7, "val/a/clip.mp4": 8, "val/b/v1.mp4": 9}
    for seed, (rel, n) in enumerate(lengths.items()):
        write_clip(src / rel, frames=n, seed=seed)
    with caplog.at_level(logging.WARNING):
        assert prepare.main(["folders", "--videos", str(src), "--out", str(root)]) == 0
    assert "4 videos share a file name with another one" in caplog.text
    jpg = root / "data" / "folders_videos" / "jpg"
    stored = {f"{p.parent.name}/{p.name}": read_n_frames(p) for p in jpg.glob("*/*")}
    assert stored == {"a/a_clip_mp4": 5, "b/b_s0_mp4": 6, "b/b_s0_mov": 7, "a/val_a_clip_mp4": 8, "b/v1": 9}
    train, _ = load_records(root / "labels" / "folders_train.csv", jpg, False)
    val, _ = load_records(root / "labels" / "folders_val.csv", jpg, False, strict_labels=True)
    assert sorted(r.n_frames for r in train) == [5, 6, 7] and sorted(r.n_frames for r in val) == [8, 9]


def test_a_prepared_id_found_in_two_files_is_refused_naming_both(tmp_path, caplog):
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "ROOT"
    MOCKS["hmdb51"](src, ann)
    first = next(src.rglob("*.avi"))
    second = src / "elsewhere" / first.name
    write_clip(second, frames=4)
    other = first.with_suffix(".mp4")
    write_clip(other, frames=4)
    assert prepare.main(["hmdb51", "--videos", str(src), "--annotations", str(ann), "--out", str(root)]) == 2
    assert f"is found in 2 files ({first.with_suffix('.avi')}, {other})" in caplog.text or \
        f"({other}, {first})" in caplog.text
    assert not (root / "data").exists()


def test_no_convert_leaves_rows_of_unreadable_videos_out_and_lists_them(tmp_path, caplog):
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "ROOT"
    MOCKS["hmdb51"](src, ann)
    (src / "wave" / "w2.avi").write_bytes(b"not a video at all" * 64)  # a broken download
    argv = ["hmdb51", "--videos", str(src), "--annotations", str(ann), "--out", str(root), "--max-failed", "50",
            "--no-convert"]
    assert prepare.main(argv) == 0
    facts = prepare.DATASETS["hmdb51"]
    csvs = [root / "labels" / n.format(split=1, variant=700) for n in (facts.train_csv, facts.val_csv)]
    assert all("w2" not in c.read_text() for c in csvs)
    assert any("w1" in c.read_text() for c in csvs)
    report = root / "data" / facts.folder / prepare.FAILED_NAME
    lines = report.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"wave/w2\t{src / 'wave' / 'w2.avi'}\t")
    assert "left 1 rows out of the label CSVs" in caplog.text


def test_rows_of_videos_that_failed_are_left_out_and_listed(tmp_path, caplog):
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "ROOT"
    MOCKS["hmdb51"](src, ann)
    good = (src / "wave" / "w2.avi").read_bytes()
    (src / "wave" / "w2.avi").write_bytes(good[:len(good) // 3])  # truncated download
    argv = ["hmdb51", "--videos", str(src), "--annotations", str(ann), "--out", str(root), "--max-failed", "50"]
    assert prepare.main(argv) == 0
    facts = prepare.DATASETS["hmdb51"]
    csvs = [root / "labels" / n.format(split=1, variant=700) for n in (facts.train_csv, facts.val_csv)]
    jpg = root / "data" / facts.folder / "jpg"
    assert all("w2" not in c.read_text() for c in csvs)
    report = root / "data" / facts.folder / prepare.FAILED_NAME
    lines = report.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"wave/w2\t{src / 'wave' / 'w2.avi'}\t")
    assert f"left 1 rows out of the label CSVs (their videos were not stored); listed in {report}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for path in csvs:
            load_records(path, jpg, False)
    assert "not found" not in caplog.text
    (src / "wave" / "w2.avi").write_bytes(good)  # fixed: a re-run stores it, lists it and removes the report
    assert prepare.main(argv) == 0
    assert any("w2" in c.read_text() for c in csvs) and not report.exists()


def test_a_video_replaced_after_its_conversion_is_left_out_of_the_video_list(tmp_path, caplog):
    """A re-run keeps the stored video (8 frames) of a file re-downloaded longer (12): listing the new file would
    make frame i of --source video another frame than the store's, so it is left out, and said."""
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "ROOT"
    MOCKS["hmdb51"](src, ann)
    argv = ["hmdb51", "--videos", str(src), "--annotations", str(ann), "--out", str(root)]
    assert prepare.main(argv) == 0
    folder = root / "data" / prepare.DATASETS["hmdb51"].folder
    assert json.loads((folder / "videos.json").read_text())["entries"]["wave/w1"]["frames"] == 8
    write_clip(src / "wave" / "w1.avi", frames=12, seed=9)
    with caplog.at_level(logging.WARNING):
        assert prepare.main([*argv, "--max-failed", "50"]) == 0
    entries = json.loads((folder / "videos.json").read_text())["entries"]
    assert "wave/w1" not in entries and entries["wave/w2"]["frames"] == 8
    assert read_n_frames(folder / "jpg" / "wave" / "w1") == 8  # the store and its CSV rows are kept
    assert any("w1" in (root / "labels" / name.format(split=1, variant=700)).read_text()
               for name in (prepare.DATASETS["hmdb51"].train_csv, prepare.DATASETS["hmdb51"].val_csv))
    assert (f"FAILED {src / 'wave' / 'w1.avi'}: 12 frames in the file, 8 in its frame store {folder / 'jpg' / 'wave'}"
            f"/w1 (the file changed since it was converted?)") in caplog.text
