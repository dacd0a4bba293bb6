"""The per-video SQLite frame store of the original: ``<video_dir>/frames.db`` + ``<video_dir>/n_frames``.

Schema (exactly the original's): table ``Images(ObjId STRING, frames BLOB, size INT)`` where
``ObjId = '<video_dir name>/frame_%05d'`` (1-based frame number), ``frames`` holds encoded JPEG bytes and
``size`` the image width. ``n_frames`` is a text file with the number of stored frames. Our writer inserts the
frames in order (frame ``i`` is ``rowid`` ``i + 1``) and adds the index `INDEX_NAME` on ``ObjId``, which the
original's reader (plain SELECTs) ignores or uses; `data.prep.index_db` adds it to existing files.
Reads fetch by ``rowid`` and verify the ObjIds (`read_unique_blobs`); decoding goes through a
`data.store.frame_decoder.FrameDecoder` (OpenCV by default).
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from data.store.atomic import atomic_path, atomic_write_text

# FrameReadError and decode_jpeg are also imported from here by the tools and the tests
from data.store.frame_decoder import FrameDecoder, FrameReadError, Frames, OpenCVDecoder, decode_jpeg

DB_NAME = "frames.db"
COUNT_NAME = "n_frames"
TABLE_SQL = "CREATE TABLE Images(ObjId STRING, frames BLOB, size INT)"
INDEX_NAME = "Images_ObjId"
# (docs/differences.md#25) the original had no index, so every ObjId query scanned the table
INDEX_SQL = f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON Images(ObjId)"
DEFAULT_DECODER = OpenCVDecoder()


def frame_id(video_dir: str | Path, index: int) -> str:
    """``ObjId`` of the 0-based frame ``index`` of the video stored in ``video_dir``."""
    return f"{Path(video_dir).name}/frame_{index + 1:05d}"


def connect_readonly(db_path: str | Path) -> sqlite3.Connection:
    """Open ``db_path`` read-only (never creates a file); raises FrameReadError if it does not exist."""
    path = Path(db_path)
    if not path.is_file():
        raise FrameReadError(f"{path}: frame database missing (convert the video with `python -m data.convert`)")
    uri = f"file:{path.resolve().as_posix()}?mode=ro&immutable=1"
    try:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise FrameReadError(f"{path}: cannot open frame database ({exc})") from exc


def _fetch_by_rowid(con: sqlite3.Connection, unique: list[int], names: list[str]) -> dict[str, bytes]:
    """Rows ``i + 1`` (where our writer puts frame ``i``), keeping only those whose ObjId is the expected one."""
    expected = {i + 1: n for i, n in zip(unique, names)}
    sql = f"SELECT rowid, ObjId, frames FROM Images WHERE rowid IN ({','.join('?' * len(expected))})"
    return {obj: blob for rowid, obj, blob in con.execute(sql, list(expected)) if expected.get(rowid) == obj}


def query_by_objid(con: sqlite3.Connection, names: list[str]) -> dict[str, bytes]:
    """The original's query: a search when the ObjId index exists, a scan of the whole table otherwise."""
    sql = f"SELECT ObjId, frames FROM Images WHERE ObjId IN ({','.join('?' * len(names))})"
    return dict(con.execute(sql, names).fetchall())


def read_unique_blobs(con: sqlite3.Connection, video_dir: str | Path,
                      indices: Sequence[int]) -> tuple[list[bytes], list[int]]:
    """JPEG blobs of the distinct 0-based ``indices`` (ascending) and, per requested index, its position there.

    Fetches by ``rowid`` (a lookup whose cost does not grow with the video) and verifies every ObjId; the frames
    whose row holds another ObjId (files inserted out of order, as the original's converter did, or with gaps)
    are fetched by ObjId with the original's query (docs/differences.md#25).
    """
    unique = sorted(set(int(i) for i in indices))
    prefix = os.path.basename(os.fspath(video_dir).rstrip("/"))  # once per clip, not per frame (hot path)
    names = [f"{prefix}/frame_{i + 1:05d}" for i in unique]
    try:
        rows = _fetch_by_rowid(con, unique, names)
        if len(rows) < len(names):
            rows.update(query_by_objid(con, [n for n in names if n not in rows]))
    except sqlite3.Error as exc:
        raise FrameReadError(f"{Path(video_dir) / DB_NAME}: query failed ({exc})") from exc
    missing = [n for n in names if n not in rows]
    if missing:
        raise FrameReadError(f"{Path(video_dir) / DB_NAME}: {len(missing)} frame(s) missing, e.g. '{missing[0]}'"
                             " (n_frames larger than the table? re-run `python -m data.check`)")
    position = {i: p for p, i in enumerate(unique)}
    return [rows[n] for n in names], [position[int(i)] for i in indices]


def read_blobs(con: sqlite3.Connection, video_dir: str | Path, indices: Sequence[int]) -> list[bytes]:
    """JPEG blobs of the 0-based ``indices`` in the order given (repeats allowed)."""
    blobs, positions = read_unique_blobs(con, video_dir, indices)
    return [blobs[p] for p in positions]


def decode_clip(blobs: Sequence[bytes], positions: Sequence[int], where: str | Path,
                decoder: FrameDecoder | None = None, reduce: int = 1,
                frame_indices: Sequence[int] | None = None) -> Frames:
    """Decode each distinct blob once and expand to the clip ``frames[positions]`` ``(T, H, W, 3)`` uint8 BGR.

    ``where`` (the database) and ``frame_indices`` (0-based frame of each blob) name a bad blob in the error.
    """
    try:
        frames = (decoder or DEFAULT_DECODER).decode(blobs, reduce)
    except FrameReadError as exc:
        if exc.position is None:
            raise FrameReadError(f"{where}: {exc}") from None
        number = (frame_indices[exc.position] if frame_indices is not None else exc.position) + 1
        raise FrameReadError(f"{where} frame {number}: frame is not a decodable JPEG") from None
    positions = list(positions)
    return frames if positions == list(range(len(blobs))) else frames[positions]  # numpy or torch indexing


def read_frames(video_dir: str | Path, indices: Sequence[int], con: sqlite3.Connection | None = None,
                decoder: FrameDecoder | None = None, reduce: int = 1) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` BGR uint8 of ``video_dir`` at the 0-based ``indices``, in that order, decoded at
    1/``reduce`` scale by ``decoder`` (default: OpenCV)."""
    own = con is None
    con = con or connect_readonly(Path(video_dir) / DB_NAME)
    try:
        blobs, positions = read_unique_blobs(con, video_dir, indices)
    finally:
        if own:
            con.close()
    frames = decode_clip(blobs, positions, Path(video_dir) / DB_NAME, decoder, reduce,
                         sorted(set(int(i) for i in indices)))
    return frames if isinstance(frames, np.ndarray) else frames.cpu().numpy()


def count_rows(video_dir: str | Path) -> int:
    """Number of frames actually stored in ``video_dir/frames.db``."""
    con = connect_readonly(Path(video_dir) / DB_NAME)
    try:
        return int(con.execute("SELECT COUNT(*) FROM Images").fetchone()[0])
    except sqlite3.Error as exc:
        raise FrameReadError(f"{Path(video_dir) / DB_NAME}: cannot count frames ({exc})") from exc
    finally:
        con.close()


def read_n_frames(video_dir: str | Path) -> int:
    """The integer in ``video_dir/n_frames``; falls back to counting the table when the file is missing."""
    path = Path(video_dir) / COUNT_NAME
    try:
        return int(path.read_text().split()[0])
    except FileNotFoundError:
        return count_rows(video_dir)
    except (ValueError, IndexError) as exc:
        raise FrameReadError(f"{path}: not an integer frame count (re-run `python -m data.check --fix`)") from exc


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """Encode a BGR ``uint8`` frame as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("cv2.imencode failed to encode a frame")
    return buf.tobytes()


def write_video(video_dir: str | Path, frames: Iterable[np.ndarray | bytes], quality: int = 90) -> int:
    """Write ``frames`` (BGR arrays or ready JPEG bytes) as ``video_dir/frames.db`` + ``n_frames``.

    Atomic: the database is built under a temporary name and renamed, and ``n_frames`` (the number of rows
    really stored) is written last, so a half-written video never looks finished. Frame ``i`` is row ``i + 1``
    and the ObjId index `INDEX_NAME` is created. Returns the number of frames.
    """
    video_dir = Path(video_dir)
    video_dir.mkdir(parents=True, exist_ok=True)
    (video_dir / COUNT_NAME).unlink(missing_ok=True)
    with atomic_path(video_dir / DB_NAME, fsync=False) as tmp:
        n = _write_db(tmp, video_dir, frames, quality)
    write_n_frames(video_dir, n)
    return n


def _write_db(tmp: Path, video_dir: Path, frames: Iterable[np.ndarray | bytes], quality: int) -> int:
    """Fill a new database file ``tmp`` with the frames of ``video_dir``; returns the row count."""
    con = sqlite3.connect(tmp)
    n = 0
    try:
        # The temp file is renamed only when complete, so a rollback journal and per-commit fsync buy nothing
        # (measured: they made writing many small clips IO-bound).
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute(TABLE_SQL)
        for n, frame in enumerate(frames, start=1):
            if isinstance(frame, (bytes, bytearray, memoryview)):
                blob = bytes(frame)
                width = int(decode_jpeg(blob, str(tmp)).shape[1])
            else:
                blob, width = encode_jpeg(frame, quality), int(frame.shape[1])
            row = (frame_id(video_dir, n - 1), sqlite3.Binary(blob), width)
            con.execute("INSERT INTO Images VALUES (?, ?, ?)", row)
        con.execute(INDEX_SQL)
        con.commit()
    finally:
        con.close()
    return n


def write_n_frames(video_dir: str | Path, n: int) -> None:
    """Write ``video_dir/n_frames`` atomically (temp file + rename)."""
    atomic_write_text(Path(video_dir) / COUNT_NAME, f"{int(n)}\n")


def list_video_dirs(jpg_dir: str | Path) -> list[Path]:
    """Every ``<jpg_dir>/<class>/<video>`` folder, sorted (hidden entries ignored)."""
    return sorted(v for c in Path(jpg_dir).iterdir() if c.is_dir() and not c.name.startswith(".")
                  for v in c.iterdir() if v.is_dir() and not v.name.startswith("."))


def is_complete(video_dir: str | Path) -> bool:
    """True when ``video_dir`` holds a finished conversion (database and ``n_frames`` both present)."""
    video_dir = Path(video_dir)
    return (video_dir / DB_NAME).is_file() and (video_dir / COUNT_NAME).is_file()
