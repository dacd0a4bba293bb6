"""Add the ObjId index to every ``frames.db`` of an existing data set, in place and atomically.

    python -m data.index_db DST [--workers N]

``DST`` is the data set folder holding ``jpg/`` (or the jpg folder itself), as for ``python -m data.check``.
Each database is copied under a temporary name beside it, indexed there and renamed over the original
(`data.store.atomic.atomic_path`), so a killed run leaves every file either as it was or fully indexed (plus at most
one hidden ``.frames.db.tmp-<pid>`` leftover). Databases that already have an index on ``ObjId`` are skipped,
so running it twice is harmless. Readers holding the old file open keep reading it. The index only speeds up
the original's ``ObjId`` queries; the schema and the rows are unchanged, so the original's code reads the files.
Prints one line per failure and a summary; exits 1 if any database failed.
"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
from pathlib import Path

from data.prep.check import find_jpg_dir
from data.prep.help_text import plain_help
from data.prep.parallel import parallel_map
from data.store.atomic import atomic_path
from data.store.frames_db import DB_NAME, INDEX_SQL, FrameReadError, connect_readonly, list_video_dirs

INDEXED, PRESENT, FAILED = "indexed", "already indexed", "failed"


def has_objid_index(con: sqlite3.Connection) -> bool:
    """True if table ``Images`` has an index whose first column is ``ObjId`` (whatever its name)."""
    names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'Images'")]
    for name in names:
        quoted = name.replace('"', '""')
        columns = [row[2] for row in con.execute(f'PRAGMA index_info("{quoted}")')]
        if columns[:1] == ["ObjId"]:
            return True
    return False


def _needs_index(db: Path) -> bool:
    """False if ``db`` already has the index; raises sqlite3.Error if it is not a frame database."""
    con = connect_readonly(db)
    try:
        if con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'Images'").fetchone() is None:
            raise sqlite3.DatabaseError("no table Images")
        return not has_objid_index(con)
    finally:
        con.close()


def _create_index(path: Path) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=OFF")  # a copy that is thrown away on failure needs no journal
        con.execute(INDEX_SQL)
        con.commit()
    finally:
        con.close()


def index_database(db: str | Path) -> str:
    """Index one ``frames.db`` in place, atomically; returns INDEXED or PRESENT (raises on failure)."""
    db = Path(db)
    if not _needs_index(db):
        return PRESENT
    with atomic_path(db) as tmp:
        shutil.copyfile(db, tmp)
        shutil.copymode(db, tmp)
        _create_index(tmp)
    return INDEXED


def _index_video(video_dir: Path) -> tuple[str, str]:
    """``(status, error line)`` for one video folder (picklable worker for `parallel_map`)."""
    db = video_dir / DB_NAME
    try:
        return index_database(db), ""
    except (sqlite3.Error, OSError) as exc:
        return FAILED, f"{db}: cannot add the ObjId index ({exc}); check it with `python -m data.check`"
    except FrameReadError as exc:  # the database is missing: the message already names the fix
        return FAILED, str(exc)


def run_index(dst: Path, workers: int = 1) -> dict[str, list[str]]:
    """Index every video of the data set ``dst``; returns ``{status: [video dirs or error lines]}``."""
    videos = list_video_dirs(find_jpg_dir(dst))
    out: dict[str, list[str]] = {INDEXED: [], PRESENT: [], FAILED: []}
    for video, (status, error) in zip(videos, parallel_map(_index_video, videos, workers)):
        out[status].append(error or str(video))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data.index_db", description=plain_help(__doc__),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dst", type=Path, help="data set folder holding jpg/ (or the jpg folder itself)")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    args = ap.parse_args(argv)
    try:
        result = run_index(args.dst, args.workers)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in result[FAILED]:
        print(f"FAILED {line}")
    total = sum(len(v) for v in result.values())
    print(f"{total} databases: {len(result[INDEXED])} indexed, {len(result[PRESENT])} already indexed, "
          f"{len(result[FAILED])} failed")
    return 1 if result[FAILED] else 0


if __name__ == "__main__":
    sys.exit(main())
