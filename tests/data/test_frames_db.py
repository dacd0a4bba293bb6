"""The SQLite frame store: schema, ordered reads with repeats, atomic writes, counts and errors."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from data import frames_db as fdb
from datagen import gradient_frames


def test_write_and_read_keep_order_and_repeats(tmp_path):
    frames = gradient_frames(6)
    video = tmp_path / "cls" / "vid_000001_000003"
    assert fdb.write_video(video, list(frames), quality=95) == 6
    assert fdb.is_complete(video) and fdb.read_n_frames(video) == 6 == fdb.count_rows(video)
    con = sqlite3.connect(video / fdb.DB_NAME)
    rows = con.execute("SELECT ObjId, size FROM Images ORDER BY ObjId").fetchall()
    con.close()
    assert rows[0] == ("vid_000001_000003/frame_00001", 64) and rows[-1][0] == "vid_000001_000003/frame_00006"
    out = fdb.read_frames(video, [3, 0, 3, 5])
    assert out.shape == (4, 48, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[0], out[2])
    assert np.abs(out.astype(int) - frames[[3, 0, 3, 5]].astype(int)).mean() < 3


def test_jpeg_bytes_are_stored_unchanged(tmp_path):
    blobs = [fdb.encode_jpeg(f, 70) for f in gradient_frames(3)]
    fdb.write_video(tmp_path / "c" / "v", blobs)
    con = fdb.connect_readonly(tmp_path / "c" / "v" / fdb.DB_NAME)
    assert fdb.read_blobs(con, tmp_path / "c" / "v", [2, 0]) == [blobs[2], blobs[0]]
    con.close()


def test_failed_write_leaves_nothing_that_looks_finished(tmp_path):
    video = tmp_path / "c" / "v"

    def frames():
        yield gradient_frames(1)[0]
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError):
        fdb.write_video(video, frames())
    assert not fdb.is_complete(video) and list(video.iterdir()) == []
    with pytest.raises(fdb.FrameReadError, match="not a decodable JPEG"):
        fdb.write_video(video, [b"\xff\xd8 not really a jpeg"])
    assert list(video.iterdir()) == []


def test_n_frames_fallback_and_errors(tmp_path):
    video = tmp_path / "c" / "v"
    fdb.write_video(video, list(gradient_frames(4)))
    (video / fdb.COUNT_NAME).unlink()
    assert fdb.read_n_frames(video) == 4 and not fdb.is_complete(video)
    fdb.write_n_frames(video, 4)
    assert (video / fdb.COUNT_NAME).read_text() == "4\n"
    (video / fdb.COUNT_NAME).write_text("four")
    with pytest.raises(fdb.FrameReadError, match="not an integer"):
        fdb.read_n_frames(video)
    with pytest.raises(fdb.FrameReadError, match="frame\\(s\\) missing"):
        fdb.read_frames(video, [0, 9])
    with pytest.raises(fdb.FrameReadError, match="frame database missing"):
        fdb.read_frames(tmp_path / "c" / "absent", [0])
    with pytest.raises(fdb.FrameReadError, match="where: frame is not"):
        fdb.decode_jpeg(b"garbage", "where")


def test_list_video_dirs(tmp_path):
    for rel in ("b/v2", "a/v1", "a/.hidden", ".tmp/x"):
        (tmp_path / rel).mkdir(parents=True)
    (tmp_path / "a" / "file.txt").write_text("x")
    assert fdb.list_video_dirs(tmp_path) == [tmp_path / "a" / "v1", tmp_path / "b" / "v2"]
