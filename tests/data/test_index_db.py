"""`python -m data.index_db`: adds the ObjId index to a real data set in place, idempotently and atomically."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from datagen import gradient_frames

from data.prep import index_db
from data.store import frames_db as fdb


def unindexed_set(root: Path, videos: int = 3) -> list[Path]:
    """A data set written by our writer, with the index dropped (as an original data set has none)."""
    dbs = []
    for v in range(videos):
        video = root / "jpg" / f"class{v % 2}" / f"vid{v}"
        fdb.write_video(video, list(gradient_frames(5, 16, 12, seed=v)))
        con = sqlite3.connect(video / fdb.DB_NAME)
        con.execute(f"DROP INDEX {fdb.INDEX_NAME}")
        con.commit()
        con.close()
        dbs.append(video / fdb.DB_NAME)
    return dbs


def indexed(db: Path) -> bool:
    con = fdb.connect_readonly(db)
    try:
        return index_db.has_objid_index(con)
    finally:
        con.close()


def rows(db: Path) -> list[tuple]:
    con = fdb.connect_readonly(db)
    try:
        return con.execute("SELECT rowid, ObjId, frames, size FROM Images ORDER BY rowid").fetchall()
    finally:
        con.close()


def test_indexes_every_database_once_and_keeps_the_rows(tmp_path, capsys):
    dbs = unindexed_set(tmp_path)
    before = {db: rows(db) for db in dbs}
    assert not any(indexed(db) for db in dbs)
    assert index_db.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "3 databases: 3 indexed, 0 already indexed, 0 failed"
    assert all(indexed(db) and rows(db) == before[db] for db in dbs)
    assert index_db.main([str(tmp_path / "jpg"), "--workers", "2"]) == 0  # idempotent
    assert capsys.readouterr().out.strip() == "3 databases: 0 indexed, 3 already indexed, 0 failed"
    assert sorted(p.name for p in dbs[0].parent.iterdir()) == [fdb.DB_NAME, fdb.COUNT_NAME]
    assert fdb.read_frames(dbs[0].parent, [4, 0]).shape == (2, 12, 16, 3)


def test_an_index_under_another_name_counts_as_present(tmp_path):
    db = unindexed_set(tmp_path, 1)[0]
    con = sqlite3.connect(db)
    con.execute("CREATE INDEX my_idx ON Images(ObjId, size)")
    con.commit()
    con.close()
    assert index_db.index_database(db) == index_db.PRESENT


def test_a_failure_leaves_the_original_file_intact(tmp_path, monkeypatch, capsys):
    good, victim, _ = unindexed_set(tmp_path)
    original = victim.read_bytes()
    broken = tmp_path / "jpg" / "class1" / "broken"
    broken.mkdir()
    (broken / fdb.DB_NAME).write_bytes(b"this is not a database" * 100)
    real = index_db._create_index

    def dies_on_victim(path: Path) -> None:  # the copy exists, the index is half-made: then the run dies
        if path.parent == victim.parent:
            con = sqlite3.connect(path)
            con.execute("CREATE TABLE half(x)")
            con.commit()
            con.close()
            raise sqlite3.OperationalError("disk I/O error")
        real(path)
    monkeypatch.setattr(index_db, "_create_index", dies_on_victim)
    assert index_db.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    failed = [line for line in out if line.startswith("FAILED")]
    assert len(failed) == 2 and all("data.check" in line for line in failed)
    assert any(str(victim) in line and "disk I/O error" in line for line in failed)
    assert out[-1] == "4 databases: 2 indexed, 0 already indexed, 2 failed"
    assert victim.read_bytes() == original and not indexed(victim) and indexed(good)
    assert sorted(p.name for p in victim.parent.iterdir()) == [fdb.DB_NAME, fdb.COUNT_NAME]  # no temp left
    assert (broken / fdb.DB_NAME).read_bytes() == b"this is not a database" * 100


def test_a_folder_without_jpg_is_a_one_line_error(tmp_path, capsys):
    assert index_db.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no jpg/ folder" in err
