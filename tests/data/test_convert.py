"""The converters end-to-end on real encoded videos and real frame folders, and the decoders they use."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from data import convert
from data.frames_db import DB_NAME, connect_readonly, count_rows, read_blobs, read_frames, read_n_frames
from data.video_io import DECODERS, VideoDecodeError, iter_frames, output_size
from datagen import gradient_frames


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
    with caplog.at_level(logging.INFO, logger="data.convert"):
        assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--workers", "2"]) == 0
    assert {p.parent.name + "/" + p.name: read_n_frames(p) for p in (dst / "jpg").glob("*/*")} == {
        "walk/w1": 12, "walk/w2": 9, "jump/j1": 7}
    assert count_rows(dst / "jpg" / "walk" / "w2") == 9
    assert f"FAILED {bad}: " in caplog.text and "failed 1 (of 4)" in caplog.text
    assert not (dst / "jpg" / "jump" / "broken").exists()

    stamp = (dst / "jpg" / "walk" / "w1" / DB_NAME).stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="data.convert"):
        assert convert.main(["videos", str(tmp_path / "src"), str(dst), "--strict"]) == 1
    assert "converted 0, already done 3, failed 1" in caplog.text
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
    assert convert.main(["frames", str(tmp_path / "src"), str(dst)]) == 0
    video = dst / "jpg" / "wave" / "clip1"
    con = connect_readonly(video / DB_NAME)
    assert read_blobs(con, video, range(11)) == blobs
    con.close()
    assert read_n_frames(dst / "jpg" / "wave" / "clip2") == 3
    assert np.abs(read_frames(dst / "jpg" / "wave" / "clip2", [2])[0].astype(int) - frames[2]).mean() < 3
    assert not (dst / "jpg" / "wave" / "empty").exists()
    assert convert.main(["frames", str(tmp_path / "src"), str(tmp_path / "small"), "--short-side", "24"]) == 0
    assert read_frames(tmp_path / "small" / "jpg" / "wave" / "clip1", [0]).shape == (1, 24, 32, 3)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(VideoDecodeError, match="file not found"):
        next(iter_frames(tmp_path / "none.mp4"))
    with pytest.raises(SystemExit):
        convert.main(["videos", str(tmp_path), str(tmp_path / "o"), "--size", "big"])
    assert convert.main(["videos", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert convert.main(["frames", str(tmp_path), str(tmp_path / "o")]) == 2  # nothing to convert
