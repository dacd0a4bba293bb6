"""The checker finds every kind of breakage on real databases, prints one line each, and --fix repairs n_frames."""
from __future__ import annotations

import logging
import sqlite3

from datagen import gradient_frames

from data.prep import check
from data.store.frames_db import COUNT_NAME, DB_NAME, TABLE_SQL, encode_jpeg, write_video


def _dataset(tmp_path):
    jpg = tmp_path / "ds" / "jpg"
    for rel in ("run/ok", "run/count", "run/blob", "run/empty", "run/nodb", "run/junk", "run/renamed"):
        write_video(jpg / rel, [encode_jpeg(f) for f in gradient_frames(5, 16, 16)])
    frames = list(gradient_frames(5, 16, 16))
    frames[4] = gradient_frames(1, 24, 16)[0]  # the last frame is wider: found by --quick too
    write_video(jpg / "run" / "size", frames)
    (jpg / "run" / "count" / COUNT_NAME).write_text("9\n")
    con = sqlite3.connect(jpg / "run" / "blob" / DB_NAME)
    con.execute("UPDATE Images SET frames = ? WHERE ObjId = 'blob/frame_00003'", (b"\xff\xd8broken",))
    con.commit()
    con.close()
    (jpg / "run" / "empty" / DB_NAME).unlink()
    con = sqlite3.connect(jpg / "run" / "empty" / DB_NAME)
    con.execute(TABLE_SQL)
    con.close()
    (jpg / "run" / "nodb" / DB_NAME).unlink()
    (jpg / "run" / "junk" / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    con = sqlite3.connect(jpg / "run" / "renamed" / DB_NAME)
    con.execute("UPDATE Images SET ObjId = replace(ObjId, 'renamed/', 'old/')")
    con.commit()
    con.close()
    return tmp_path / "ds"


def test_every_breakage_is_one_line_and_fix_repairs_counts(tmp_path, capsys, caplog):
    ds = _dataset(tmp_path)
    csv = tmp_path / "x_val.csv"
    csv.write_text("label,id,split\nrun,ok,val\nrun,lost,val\nrun,elsewhere,train\n")
    with caplog.at_level(logging.WARNING, logger="data.prep.check"):
        assert check.main([str(ds), "--csv", str(csv), "--workers", "2"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    lines = [line for line in out if line.startswith("BROKEN")]
    broken = {key: next(line for line in lines if f"/run/{key}" in line or f"{key}:" in line)
              for key in ("count", "blob", "empty", "nodb", "junk", "renamed", "size")}
    assert len(lines) == 7, out
    assert "n_frames says 9 but frames.db has 5 frames; run with --fix" in broken["count"]
    assert "frame 3: frame is not a decodable JPEG" in broken["blob"]
    assert "table Images is empty" in broken["empty"] and "frames.db missing" in broken["nodb"]
    assert "not a readable frame database" in broken["junk"] and "'old/frame_00001'" in broken["renamed"]
    assert "frames differ in size (16x16, 24x16)" in broken["size"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{csv}: 1 of 2 rows have no video folder (not converted or not downloaded): "
                        f"{csv}:3 ({ds / 'jpg' / 'run' / 'lost'})"]  # the train row is not this file's split
    assert out[-1] == "checked 8 videos and 1 CSV file(s): 7 broken, 0 fixed"

    assert check.main([str(ds / "jpg"), "--fix", "--quick"]) == 1  # the jpg folder itself is accepted too
    out = capsys.readouterr().out
    assert f"FIXED  {ds / 'jpg' / 'run' / 'count'}: n_frames says 9, rewritten to 5" in out
    assert (ds / "jpg" / "run" / "count" / COUNT_NAME).read_text() == "5\n"
    assert "6 broken, 1 fixed" in out  # --quick reads frames 1, 3 and 5, so the bad frame 3 is still found


def test_clean_set_passes_and_bad_root_is_reported(tmp_path, tiny_synthetic, capsys):
    assert check.main([str(tiny_synthetic.root), "--csv", str(tiny_synthetic.train_csv),
                       str(tiny_synthetic.val_csv)]) == 0
    assert "checked 16 videos and 2 CSV file(s): 0 broken, 0 fixed" in capsys.readouterr().out
    assert check.main([str(tmp_path / "nothing")]) == 2


def test_100001_frames_are_not_a_false_alarm_and_a_gap_is_found(tmp_path, capsys):
    video = tmp_path / "ds" / "jpg" / "long" / "big"
    video.mkdir(parents=True)
    blob = encode_jpeg(gradient_frames(1, 8, 8)[0])
    con = sqlite3.connect(video / DB_NAME)
    con.execute(TABLE_SQL)
    con.executemany("INSERT INTO Images VALUES (?, ?, 8)", ((f"big/frame_{i:05d}", blob) for i in range(1, 100_002)))
    con.commit()
    con.close()
    (video / COUNT_NAME).write_text("100001\n")
    assert check.main([str(tmp_path / "ds"), "--quick"]) == 0
    assert "checked 1 videos: 0 broken" in capsys.readouterr().out
    con = sqlite3.connect(video / DB_NAME)
    con.execute("UPDATE Images SET ObjId = 'big/frame_100002' WHERE ObjId = 'big/frame_99999'")
    con.commit()
    con.close()
    assert check.main([str(tmp_path / "ds"), "--quick"]) == 1
    assert "(e.g. 'big/frame_100002', folder renamed?)" in capsys.readouterr().out


def test_ids_in_train_and_val_csvs_warn(tiny_synthetic, tmp_path, caplog):
    train = tmp_path / "s_train.csv"
    val_rows = tiny_synthetic.val_csv.read_text().splitlines()
    train.write_text(tiny_synthetic.train_csv.read_text() + val_rows[1].replace(",val", ",train") + "\n")
    with caplog.at_level(logging.WARNING, logger="data.catalog.labels"):
        assert check.main([str(tiny_synthetic.root), "--csv", str(train), str(tiny_synthetic.val_csv)]) == 0
    assert "1 video ids are in both train and val" in caplog.text
