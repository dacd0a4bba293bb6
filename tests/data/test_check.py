"""The checker finds every kind of breakage on real databases, prints one line each, and --fix repairs n_frames."""
from __future__ import annotations

import sqlite3

from data import check
from data.frames_db import COUNT_NAME, DB_NAME, TABLE_SQL, encode_jpeg, write_video
from datagen import gradient_frames


def _dataset(tmp_path):
    jpg = tmp_path / "ds" / "jpg"
    for rel in ("run/ok", "run/count", "run/blob", "run/empty", "run/nodb", "run/junk", "run/renamed"):
        write_video(jpg / rel, [encode_jpeg(f) for f in gradient_frames(5, 16, 16)])
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


def test_every_breakage_is_one_line_and_fix_repairs_counts(tmp_path, capsys):
    ds = _dataset(tmp_path)
    csv = tmp_path / "x_val.csv"
    csv.write_text("label,id\nrun,ok\nrun,lost\n")
    assert check.main([str(ds), "--csv", str(csv), "--workers", "2"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    lines = [line for line in out if line.startswith("BROKEN")]
    broken = {key: next(line for line in lines if f"/run/{key}" in line or f"{key}:" in line)
              for key in ("count", "blob", "empty", "nodb", "junk", "renamed", "x_val.csv:3")}
    assert len(lines) == 7, out
    assert "n_frames says 9 but frames.db has 5 frames; run with --fix" in broken["count"]
    assert "frame 3: frame is not a decodable JPEG" in broken["blob"]
    assert "table Images is empty" in broken["empty"] and "frames.db missing" in broken["nodb"]
    assert "not a readable frame database" in broken["junk"] and "'old/frame_00001'" in broken["renamed"]
    assert "video folder" in broken["x_val.csv:3"] and "run/lost missing" in broken["x_val.csv:3"]
    assert out[-1] == "checked 7 videos and 1 CSV file(s): 7 broken, 0 fixed"

    assert check.main([str(ds / "jpg"), "--fix", "--quick"]) == 1  # the jpg folder itself is accepted too
    out = capsys.readouterr().out
    assert f"FIXED  {ds / 'jpg' / 'run' / 'count'}: n_frames says 9, rewritten to 5" in out
    assert (ds / "jpg" / "run" / "count" / COUNT_NAME).read_text() == "5\n"
    assert "5 broken, 1 fixed" in out  # --quick reads frames 1, 3 and 5, so the bad frame 3 is still found


def test_clean_set_passes_and_bad_root_is_reported(tmp_path, tiny_synthetic, capsys):
    assert check.main([str(tiny_synthetic.root), "--csv", str(tiny_synthetic.train_csv),
                       str(tiny_synthetic.val_csv)]) == 0
    assert "checked 16 videos and 2 CSV file(s): 0 broken, 0 fixed" in capsys.readouterr().out
    assert check.main([str(tmp_path / "nothing")]) == 2
