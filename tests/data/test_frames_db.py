"""The SQLite frame store: schema, ordered reads with repeats, atomic writes, counts and errors."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from datagen import gradient_frames

from data.store import frames_db as fdb


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


# --- reads by rowid, verified, with the original's ObjId query as fallback ---

def original_query(con: sqlite3.Connection, video, indices) -> list[bytes]:
    """The original's read (one ``ObjId IN (...)`` query), blobs put back in the requested order."""
    names = [fdb.frame_id(video, i) for i in indices]
    rows = fdb.query_by_objid(con, names)
    return [rows[n] for n in names]


def hand_made_db(video, order, blob: bytes, index: bool) -> None:
    """A frames.db laid out as the original converter may leave it: rows inserted in ``order`` (0-based frames),
    optionally without the ObjId index."""
    video.mkdir(parents=True)
    con = sqlite3.connect(video / fdb.DB_NAME)
    con.execute(fdb.TABLE_SQL)
    con.executemany("INSERT INTO Images VALUES (?, ?, ?)",
                    [(fdb.frame_id(video, i), blob + bytes([i % 256]), 8) for i in order])
    if index:
        con.execute(fdb.INDEX_SQL)
    con.commit()
    con.close()


def vm_steps(con: sqlite3.Connection, fn) -> int:
    """SQLite virtual-machine instructions executed by ``fn()`` (a scan runs a few per row)."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0
    con.set_progress_handler(count, 1)
    try:
        fn()
    finally:
        con.set_progress_handler(None, 1)
    return steps[0]


def test_writer_adds_the_objid_index_and_keeps_the_original_schema(tmp_path):
    video = tmp_path / "c" / "v"
    fdb.write_video(video, list(gradient_frames(3)))
    con = sqlite3.connect(video / fdb.DB_NAME)
    assert con.execute("SELECT sql FROM sqlite_master WHERE type = 'table'").fetchall() == [(fdb.TABLE_SQL,)]
    plan = " ".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN SELECT ObjId, frames FROM Images "
                                               "WHERE ObjId IN (?, ?)", ["v/frame_00001", "v/frame_00002"]))
    assert f"USING INDEX {fdb.INDEX_NAME}" in plan and "SCAN" not in plan
    assert [r[0] for r in con.execute("SELECT rowid FROM Images ORDER BY ObjId")] == [1, 2, 3]
    con.close()


def test_rowid_reads_return_the_original_querys_blobs_in_one_statement(tmp_path):
    video = tmp_path / "c" / "vid_000001_000003"
    fdb.write_video(video, [fdb.encode_jpeg(f, 80) for f in gradient_frames(20)])
    con = fdb.connect_readonly(video / fdb.DB_NAME)
    indices = [7, 0, 7, 19, 3, 3, 12]
    statements: list[str] = []
    con.set_trace_callback(statements.append)
    got = fdb.read_blobs(con, video, indices)
    con.set_trace_callback(None)
    assert got == original_query(con, video, indices)
    assert len(statements) == 1 and "rowid IN" in statements[0]
    con.close()


@pytest.mark.parametrize("index", [False, True])
def test_reordered_rows_and_gaps_fall_back_to_the_objid_query(tmp_path, index):
    blob = fdb.encode_jpeg(gradient_frames(1)[0])
    video = tmp_path / "c" / "v"
    order = [9, 2, 0, 7, 5, 3, 1, 8, 6, 11]  # directory order, frames 5 (index 4) and 11 (index 10) missing
    hand_made_db(video, order, blob, index)
    con = fdb.connect_readonly(video / fdb.DB_NAME)
    wanted = [0, 3, 5, 9, 3, 11]
    assert fdb.read_blobs(con, video, wanted) == [blob + bytes([i]) for i in wanted]
    assert fdb.read_blobs(con, video, wanted) == original_query(con, video, wanted)
    with pytest.raises(fdb.FrameReadError, match="1 frame\\(s\\) missing, e.g. 'v/frame_00005'"):
        fdb.read_blobs(con, video, [0, 4])
    con.close()


def test_a_two_frame_read_from_a_long_video_does_not_scan(tmp_path):
    blob = fdb.encode_jpeg(gradient_frames(1, 8, 8)[0])
    n = 3000
    short, long_, shuffled = tmp_path / "c" / "short", tmp_path / "c" / "long", tmp_path / "c" / "shuffled"
    fdb.write_video(short, [blob] * 30)
    fdb.write_video(long_, [blob] * n)
    hand_made_db(shuffled, list(np.random.default_rng(0).permutation(n)), blob, index=True)
    steps = {}
    for video in (short, long_, shuffled):
        con = fdb.connect_readonly(video / fdb.DB_NAME)
        steps[video.name] = vm_steps(con, lambda: fdb.read_blobs(con, video, [3, 17]))  # noqa: B023
        con.close()
    # the rowid read and the indexed fallback cost the same for 30 and 3000 frames; a scan costs > 1 step per row
    assert steps["long"] <= steps["short"] + 5 < 100, steps
    assert steps["shuffled"] < 3 * steps["short"] + 50 < n, steps
    con = fdb.connect_readonly(long_ / fdb.DB_NAME)
    assert vm_steps(con, lambda: original_query(con, long_, [3, 17])) < 100  # the index serves old readers too
    con.close()
    hand_made_db(tmp_path / "c" / "noindex", range(n), blob, index=False)
    con = fdb.connect_readonly(tmp_path / "c" / "noindex" / fdb.DB_NAME)
    assert vm_steps(con, lambda: original_query(con, tmp_path / "c" / "noindex", [3, 17])) > n  # what it replaces
    con.close()
