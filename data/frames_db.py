"""The per-video SQLite frame store of the original: ``<video_dir>/frames.db`` + ``<video_dir>/n_frames``.

Schema (exactly the original's): table ``Images(ObjId STRING, frames BLOB, size INT)`` where
``ObjId = '<video_dir name>/frame_%05d'`` (1-based frame number), ``frames`` holds encoded JPEG bytes and
``size`` the image width. ``n_frames`` is a text file with the number of stored frames.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from data.atomic import atomic_path, atomic_write_text

DB_NAME = "frames.db"
COUNT_NAME = "n_frames"
TABLE_SQL = "CREATE TABLE Images(ObjId STRING, frames BLOB, size INT)"


class FrameReadError(Exception):
    """A clip could not be read: missing/corrupt database, missing frames or undecodable JPEG."""


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


def read_blobs(con: sqlite3.Connection, video_dir: str | Path, indices: Sequence[int]) -> list[bytes]:
    """JPEG blobs of the 0-based ``indices`` in the order given (repeats allowed), with one query."""
    unique = sorted(set(int(i) for i in indices))
    prefix = os.path.basename(os.fspath(video_dir).rstrip("/"))  # once per clip, not per frame (hot path)
    names = [f"{prefix}/frame_{i + 1:05d}" for i in unique]
    sql = f"SELECT ObjId, frames FROM Images WHERE ObjId IN ({','.join('?' * len(names))})"
    try:
        rows = dict(con.execute(sql, names).fetchall())
    except sqlite3.Error as exc:
        raise FrameReadError(f"{Path(video_dir) / DB_NAME}: query failed ({exc})") from exc
    missing = [n for n in names if n not in rows]
    if missing:
        raise FrameReadError(f"{Path(video_dir) / DB_NAME}: {len(missing)} frame(s) missing, e.g. '{missing[0]}'"
                             " (n_frames larger than the table? re-run `python -m data.check`)")
    by_index = {i: rows[n] for i, n in zip(unique, names)}
    return [by_index[int(i)] for i in indices]


def decode_jpeg(blob: bytes, where: str = "") -> np.ndarray:
    """Decode one JPEG blob to a BGR ``uint8`` array ``(H, W, 3)`` (OpenCV order, as the original)."""
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FrameReadError(f"{where or 'blob'}: frame is not a decodable JPEG")
    return img


def read_frames(video_dir: str | Path, indices: Sequence[int], con: sqlite3.Connection | None = None) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` BGR uint8 of ``video_dir`` at the 0-based ``indices``, in that order."""
    own = con is None
    con = con or connect_readonly(Path(video_dir) / DB_NAME)
    try:
        blobs = read_blobs(con, video_dir, indices)
    finally:
        if own:
            con.close()
    decoded: dict[int, np.ndarray] = {}
    out = []
    for i, blob in zip(indices, blobs):
        if i not in decoded:
            try:  # the message is built only on failure: this loop is the loader's hot path
                decoded[i] = decode_jpeg(blob)
            except FrameReadError:
                raise FrameReadError(f"{Path(video_dir) / DB_NAME} frame {i + 1}: frame is not a decodable JPEG") from None
        out.append(decoded[i])
    try:
        return np.stack(out)
    except ValueError as exc:
        raise FrameReadError(f"{Path(video_dir) / DB_NAME}: frames differ in size ({exc})") from exc


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
    really stored) is written last, so a half-written video never looks finished. Returns that number.
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
            con.execute("INSERT INTO Images VALUES (?, ?, ?)", (frame_id(video_dir, n - 1), sqlite3.Binary(blob), width))
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
