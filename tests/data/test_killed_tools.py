"""data.convert and data.prepare killed mid-video (SIGKILL or SIGTERM, --workers 2): no process survives them, and
a re-run leaves no partial ``.frames.db.tmp-<pid>`` file behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datagen import write_clip

from data.store.atomic import is_temp_name
from data.store.frames_db import read_n_frames

ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if is_temp_name(p.name)]


@pytest.mark.slow
@pytest.mark.parametrize("tool,sig", [("convert", signal.SIGKILL), ("convert", signal.SIGTERM),
                                      ("prepare", signal.SIGKILL)])
def test_tool_killed_mid_video_leaves_no_process_and_no_partial_file(tmp_path, tool, sig):
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(6):
        write_clip(src / "a" / f"v{i}.mp4", frames=400, width=160, height=120, seed=i)
    if tool == "convert":
        cmd = [sys.executable, "-m", "data.convert", "videos", str(src), str(out), "--workers", "2"]
        dst = out
    else:
        cmd = [sys.executable, "-m", "data.prepare", "folders", "--videos", str(src), "--out", str(out),
               "--val-fraction", "0", "--workers", "2"]
        dst = out / "data" / "folders_videos"
    log = open(tmp_path / "out.txt", "w")  # a file, not a pipe: a survivor holding a pipe would hang the test
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (dst.is_dir() and _temps(dst)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "converted everything before it could be killed"
    helpers = _descendants(proc.pid)
    assert len(helpers) >= 3  # forkserver, resource tracker, pool workers
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    log.close()
    assert proc.returncode == -signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while _alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(helpers), f"left running after {sig.name}: {_alive(helpers)}"
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert not _temps(dst)
    assert all(read_n_frames(dst / "jpg" / "a" / f"v{i}") == 400 for i in range(6))
