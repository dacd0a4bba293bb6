"""train/results/lock.py: one run per results folder; a live lock refuses at once, a dead process's lock is taken
over by exactly one of the runs that find it."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest
from engine_helpers import ROOT, TINY, dataset_for, tiny_args

from data.prep.synthetic import SYNTHETIC_SPEC
from train.results.lock import LOCK_NAME, FolderBusyError, RunLock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_records_the_run_and_is_released(tmp_path):
    lock = RunLock(tmp_path).acquire()
    info = json.loads((tmp_path / LOCK_NAME).read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname() and info["argv"] == sys.argv
    with pytest.raises(FolderBusyError, match=f"pid {os.getpid()} on {socket.gethostname()}"):
        RunLock(tmp_path).acquire()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    RunLock(tmp_path).acquire().release()


def test_stale_lock_of_dead_process_is_taken_over(tmp_path, caplog):
    dead = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": 0,
                                                  "argv": ["train.py"]}))
    with caplog.at_level(logging.WARNING):
        lock = RunLock(tmp_path).acquire()
    assert f"stale lock of pid {dead}" in caplog.text
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere", "started": 0, "argv": []}))
    with pytest.raises(FolderBusyError, match="on elsewhere"):
        RunLock(tmp_path).acquire()


@pytest.mark.slow
def test_second_run_into_a_locked_folder_fails_at_once(tmp_path):
    folder = tmp_path / f"{TINY}_gates_False"
    lock = RunLock(folder).acquire()  # the "running" first run: this live process
    try:
        result = subprocess.run([sys.executable, str(ROOT / "tests" / "train" / "ddp_main.py"),
                                 *tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "1")],
                                cwd=ROOT, capture_output=True, text=True, timeout=240)
    finally:
        lock.release()
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"in use by the run of pid {os.getpid()}" in lines[0], result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME] or not any(folder.glob("*.pth"))
    assert not (folder / "train.log").exists()  # the running run's log is not touched


def _race(folder: str, start, attempted, wins) -> None:
    """One racer: wait for the others, try the lock, hold it until every racer has tried."""
    start.wait()
    try:
        lock = RunLock(folder).acquire()
    except FolderBusyError:
        lock = None
    with wins.get_lock():
        wins.value += lock is not None
    attempted.wait()
    if lock is not None:
        lock.release()
    os._exit(0)  # no atexit or pytest teardown in the forked child


@pytest.mark.slow
def test_racing_runs_over_a_stale_lock_give_it_to_exactly_one(tmp_path):
    ctx = multiprocessing.get_context("fork")
    racers, trials, winners = 3, 40, []
    began = time.monotonic()
    for trial in range(trials):
        folder = tmp_path / str(trial)
        folder.mkdir()
        (folder / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                                                    "started": 0, "argv": []}))
        start, attempted, wins = ctx.Barrier(racers), ctx.Barrier(racers), ctx.Value("i", 0)
        procs = [ctx.Process(target=_race, args=(str(folder), start, attempted, wins)) for _ in range(racers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(10)
        assert all(p.exitcode == 0 for p in procs)
        winners.append(wins.value)
    assert winners == [1] * trials, f"trials won by 0 or several racers: {winners}"
    assert time.monotonic() - began < 60


def test_a_results_folder_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(FolderBusyError, match=f"^{blocker / 'run' / LOCK_NAME}: cannot create the run's lock file "
                                              r"\(Not a directory\); give --model-dir a writable folder$"):
        RunLock(blocker / "run").acquire()
