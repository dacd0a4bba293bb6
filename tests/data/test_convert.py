"""The converters end-to-end on real encoded videos and real frame folders, and the decoders they use."""
from __future__ import annotations

import errno
import logging
import os
import subprocess

import cv2
import numpy as np
import pytest
from datagen import gradient_frames, write_clip

from data.prep import convert
from data.store.frames_db import DB_NAME, connect_readonly, count_rows, read_blobs, read_frames, read_n_frames
from data.store.video_io import DECODERS, VideoDecodeError, iter_frames, output_size


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_decoders_agree_on_real_files(video_file_factory, ext):
    path, written = video_file_factory(f"v{ext}", frames=20, fps=10)
    decoded = {d: np.stack(list(iter_frames(path, decoder=d))) for d in DECODERS}
    assert decoded["opencv"].shape == decoded["pyav"].shape == (20, 48, 64, 3)
    assert np.abs(decoded["opencv"].astype(int) - written.astype(int)).mean() < 8
    assert np.abs(decoded["opencv"].astype(int) - decoded["pyav"].astype(int)).mean() < 2
    for d in DECODERS:  # [0.5, 1.5) s at 10 fps = frames 5..14; --fps 5 keeps every other frame
        assert len(list(iter_frames(path, decoder=d, start=0.5, end=1.5))) == 10
        assert len(list(iter_frames(path, decoder=d, fps=5))) == 10
        assert next(iter_frames(path, decoder=d, short_side=24)).shape == (24, 32, 3)
    assert output_size(64, 48, size=(20, 10)) == (20, 10) and output_size(48, 64, short_side=24) == (24, 32)


def test_videos_end_to_end_resume_and_corrupt_input(tmp_path, video_file_factory, caplog):
    video_file_factory("src/walk/w1.mp4", frames=12)
    video_file_factory("src/walk/w2.avi", frames=9, seed=1)
    video_file_factory("src/jump/j1.mkv", frames=7, seed=2)
    bad = tmp_path / "src" / "jump" / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "src" / "jump" / "notes.txt").write_text("not a video")
    dst = tmp_path / "dst"
    video_file_factory("src/jump/J2.MOV", frames=5, seed=3)
    with caplog.at_level(logging.INFO, logger="data.prep.convert"):
        assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--workers", "2", "--max-failed", "20%"]) == 0
    assert {p.parent.name + "/" + p.name: read_n_frames(p) for p in (dst / "jpg").glob("*/*")} == {
        "walk/w1": 12, "walk/w2": 9, "jump/j1": 7, "jump/J2": 5}
    assert count_rows(dst / "jpg" / "walk" / "w2") == 9
    assert f"FAILED {bad}: " in caplog.text and "failed 1 (of 5), skipped 1 files that are not videos (.txt: 1)" \
        in caplog.text
    assert not (dst / "jpg" / "jump" / "broken").exists()

    stamp = (dst / "jpg" / "walk" / "w1" / DB_NAME).stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="data.prep.convert"):
        assert convert.main(["videos", str(tmp_path / "src"), str(dst)]) == 1  # 1 of 5 > the default 1%
    assert "converted 0, already done 4, failed 1" in caplog.text
    assert "1 of 5 videos (20.0%) failed, more than --max-failed 1%" in caplog.text
    assert (dst / "jpg" / "walk" / "w1" / DB_NAME).stat().st_mtime_ns == stamp


def test_videos_cut_by_csv_time_slices(tmp_path, video_file_factory):
    video_file_factory("src/golf/g1.mp4", frames=30, fps=10)
    video_file_factory("src/golf/g2_000000_000002.mp4", frames=15, fps=10)  # already trimmed: used whole
    csv = tmp_path / "k_train.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\ngolf,g1,1.0,2.5,train\ngolf,g1,0,1,train\n"
                   "golf,g2,0,2,train\ngolf,absent,0,1,train\n")
    dst = tmp_path / "dst"
    args = ["videos", str(tmp_path / "src"), str(dst), "--csv", str(csv), "--timeslices", "--size", "32x24"]
    assert convert.main(args + ["--decoder", "pyav"]) == 0
    jpg = dst / "jpg" / "golf"
    assert {p.name: read_n_frames(p) for p in jpg.iterdir()} == {
        "g1_000001_000002": 15, "g1_000000_000001": 10, "g2_000000_000002": 15}
    first = read_frames(jpg / "g1_000001_000002", [0])[0]
    assert first.shape == (24, 32, 3)
    assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--timeslices"]) == 2


def test_sub_second_slices_of_one_video_get_two_folders(tmp_path, video_file_factory):
    video_file_factory("src/golf/g1.mp4", frames=10, fps=10)
    csv = tmp_path / "k_train.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\ngolf,g1,0.0,0.4,train\ngolf,g1,0.5,0.9,train\n")
    dst = tmp_path / "dst"
    assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--csv", str(csv), "--timeslices"]) == 0
    assert {p.name: read_n_frames(p) for p in (dst / "jpg" / "golf").iterdir()} == {
        "g1_000000_000000_ms000000_000400": 4, "g1_000000_000000_ms000500_000900": 4}


def test_frames_folders_keep_jpeg_bytes_and_accept_png(tmp_path):
    src = tmp_path / "src" / "wave" / "clip1"
    src.mkdir(parents=True)
    frames = gradient_frames(11)
    blobs = []
    for i, frame in enumerate(frames, start=1):
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 77])
        blobs.append(buf.tobytes())
        (src / f"frame_{i:05d}.jpg").write_bytes(blobs[-1])  # frame_00010 must sort after frame_00009
    png = tmp_path / "src" / "wave" / "clip2"
    png.mkdir()
    for i, frame in enumerate(frames[:3], start=1):
        cv2.imwrite(str(png / f"frame_{i:05d}.png"), frame)
    (tmp_path / "src" / "wave" / "empty").mkdir()
    dst = tmp_path / "dst"
    assert convert.main(["frames", str(tmp_path / "src"), str(dst)]) == 1  # the empty folder: 1 of 3 failed
    video = dst / "jpg" / "wave" / "clip1"
    con = connect_readonly(video / DB_NAME)
    assert read_blobs(con, video, range(11)) == blobs
    con.close()
    assert read_n_frames(dst / "jpg" / "wave" / "clip2") == 3
    assert np.abs(read_frames(dst / "jpg" / "wave" / "clip2", [2])[0].astype(int) - frames[2]).mean() < 3
    assert not (dst / "jpg" / "wave" / "empty").exists()
    assert convert.main(["frames", str(tmp_path / "src"), str(tmp_path / "small"), "--short-side", "24",
                         "--max-failed", "50"]) == 0
    assert read_frames(tmp_path / "small" / "jpg" / "wave" / "clip1", [0]).shape == (1, 24, 32, 3)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(VideoDecodeError, match="file not found"):
        next(iter_frames(tmp_path / "none.mp4"))
    with pytest.raises(SystemExit):
        convert.main(["videos", str(tmp_path), str(tmp_path / "o"), "--size", "big"])
    assert convert.main(["videos", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert convert.main(["frames", str(tmp_path), str(tmp_path / "o")]) == 2  # nothing to convert


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_rotated_video_has_one_orientation_in_both_decoders_and_the_store(tmp_path, ext):
    written = write_clip(tmp_path / "src" / "turn" / f"phone{ext}", frames=6, width=32, height=24, rotation=90)
    upright = np.rot90(written, 1, axes=(1, 2))  # 90 degrees counter-clockwise, as a player shows it
    decoded = {d: np.stack(list(iter_frames(tmp_path / "src" / "turn" / f"phone{ext}", decoder=d))) for d in DECODERS}
    for d in DECODERS:
        assert decoded[d].shape == (6, 32, 24, 3), d
        assert np.abs(decoded[d].astype(int) - upright.astype(int)).mean() < 8, d
    for d in DECODERS:
        out = tmp_path / d
        assert convert.main(["videos", str(tmp_path / "src"), str(out), "--decoder", d]) == 0
        stored = read_frames(out / "jpg" / "turn" / "phone", range(6))
        assert np.abs(stored.astype(int) - upright.astype(int)).mean() < 8, d


def test_csv_rows_find_any_case_of_every_container_across_several_csvs(tmp_path, video_file_factory, caplog):
    for i, ext in enumerate([".MP4", ".mov", ".Mkv", ".avi"]):
        video_file_factory(f"src/walk/v{i}{ext}", frames=4, seed=i)
    video_file_factory("src/flat9.mp4", frames=3)  # a flat folder: found from the row's id
    train, val = tmp_path / "s_train.csv", tmp_path / "s_val.csv"
    train.write_text("label,id\nwalk,v0\nwalk,v1\nwalk,flat9\n" + "".join(f"walk,gone{i}\n" for i in range(6)))
    val.write_text("label,id\nwalk,v2\nwalk,v3\n")
    dst = tmp_path / "dst"
    with caplog.at_level(logging.INFO, logger="data.prep.convert"):
        assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--csv", str(train), str(val)]) == 0
    assert sorted(p.name for p in (dst / "jpg" / "walk").iterdir()) == ["flat9", "v0", "v1", "v2", "v3"]
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.startswith(f"6 CSV rows have no video file under {tmp_path / 'src'} (skipped): "
                              f"{train}:5 (walk/gone0)")
    assert f"{train}:9 (walk/gone4) and 1 more" in warning and "gone5" not in warning


def test_other_size_options_need_overwrite(tmp_path, video_file_factory, caplog):
    video_file_factory("src/walk/w1.mp4", frames=4)
    dst = tmp_path / "dst"
    base = ["videos", str(tmp_path / "src"), str(dst)]
    assert convert.main(base + ["--short-side", "24"]) == 0
    assert read_frames(dst / "jpg" / "walk" / "w1", [0]).shape == (1, 24, 32, 3)
    caplog.clear()
    assert convert.main(base + ["--short-side", "16"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "short_side 24 -> 16" in errors[0] and "--overwrite" in errors[0]
    assert read_frames(dst / "jpg" / "walk" / "w1", [0]).shape == (1, 24, 32, 3)  # old frames untouched
    assert convert.main(base + ["--short-side", "16", "--overwrite"]) == 0
    assert read_frames(dst / "jpg" / "walk" / "w1", [0]).shape == (1, 16, 21, 3)
    assert convert.main(base + ["--short-side", "16"]) == 0  # same options again: nothing to redo


def test_label_outside_jpg_is_refused_with_file_and_line(tmp_path, video_file_factory, caplog):
    video_file_factory("src/walk/w1.mp4", frames=3)
    video_file_factory("w1.mp4", frames=3)  # tmp_path/w1.mp4: what a label '..' would reach
    csv = tmp_path / "s_train.csv"
    csv.write_text("label,id\nwalk,w1\n..,w1\n")
    dst = tmp_path / "src" / "dst"
    assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--csv", str(csv)]) == 2
    assert f"{csv}:3: label '..' cannot be a folder name" in caplog.text
    assert not dst.exists() and not (tmp_path / "src" / "w1").exists()


def _tmpfs(path, size: str, readonly: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 160 KiB tmpfs (needs root); the test is skipped when mounting is not allowed."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "160k"):
        pytest.skip("cannot mount a tmpfs here (not root?)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_stops_at_once_with_one_line_and_keeps_finished_videos(tmp_path, small_disk, caplog):
    for i in range(12):
        write_clip(tmp_path / "src" / "walk" / f"w{i:02d}.avi", frames=30, width=96, height=64, seed=i)
    with caplog.at_level(logging.INFO, logger="data.prep.convert"):
        code = convert.main(["videos", str(tmp_path / "src"), str(small_disk / "dst"), "--quality", "100"])
    assert code == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].startswith("STOPPED ") and "not the video's fault" in errors[0]
    assert "converted" not in caplog.text  # no summary that would count the disk's failures as bad videos
    done = [p for p in (small_disk / "dst" / "jpg" / "walk").iterdir() if (p / "n_frames").is_file()]
    assert 0 < len(done) < 12
    for video in done:
        assert read_n_frames(video) == count_rows(video) == 30


def test_read_only_disk_and_permission_denied_stop_the_run(tmp_path, video_file_factory, monkeypatch, caplog):
    for i in range(3):
        video_file_factory(f"src/walk/w{i}.mp4", frames=3, seed=i)
    ro = tmp_path / "ro"
    if _tmpfs(ro, "1m", readonly=True):
        try:
            assert convert.main(["videos", str(tmp_path / "src"), str(ro / "dst")]) == 3
        finally:
            subprocess.run(["umount", "-l", str(ro)], check=False)
        assert "Read-only file system" in caplog.text
    caplog.clear()
    calls = []
    replace = os.replace

    def denied(src, dst):  # the lowest write call of the frame store: the final rename (root ignores chmod)
        if not str(dst).endswith(DB_NAME):
            return replace(src, dst)
        calls.append(dst)
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))
    monkeypatch.setattr("data.store.atomic.os.replace", denied)
    with caplog.at_level(logging.INFO, logger="data.prep.convert"):
        assert convert.main(["videos", str(tmp_path / "src"), str(tmp_path / "dst")]) == 3
    assert len(calls) == 1  # the first video: the run stopped there
    assert "STOPPED" in caplog.text and "Permission denied" in caplog.text and "FAILED" not in caplog.text


def test_two_videos_of_one_name_are_refused_never_merged(tmp_path, video_file_factory, caplog):
    first, _ = video_file_factory("src/b/s0.mp4", frames=6)
    second, _ = video_file_factory("src/b/s0.mov", frames=7, seed=1)
    video_file_factory("src/b/s1.mp4", frames=5, seed=2)
    dst = tmp_path / "dst"
    assert convert.main(["videos", str(tmp_path / "src"), str(dst)]) == 2
    assert f"{second} and {first} would both be stored as video 'b/s0'; rename all but one" in caplog.text
    assert not (dst / "jpg").exists()
    csv = tmp_path / "labels.csv"
    csv.write_text("label,id\nb,s1\n")
    assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--csv", str(csv)]) == 0  # s0 is not asked for
    csv.write_text("label,id\nb,s1\nb,s0\n")
    caplog.clear()
    assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--csv", str(csv)]) == 2
    assert f"{second} and {first} would both be stored" in caplog.text and not (dst / "jpg" / "b" / "s0").exists()
