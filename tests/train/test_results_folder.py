"""The results folder under faults: a resume from an earlier epoch never mixes two branches, ``--resume-epoch auto``
always starts or continues (also after a run killed before its first checkpoint), a finished run is said to be
finished and nothing is written, and a real signal while a run starts gives the requeue exit code."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_helpers import ROOT, TINY, dataset_for, tiny_args, tiny_network

from data.catalog.labels import load_records
from data.prep.synthetic import SYNTHETIC_SPEC
from train.engine import loop
from train.engine.run import main
from train.results.checkpoint import load_checkpoint_file, train_list_fingerprint
from train.results.preempt import REQUEUE_EXIT

FOLDER = f"{TINY}_gates_False"
CHILD = Path(__file__).with_name("ddp_main.py")


def _train(model_dir: Path, *extra: str) -> int:
    with tiny_network():
        return main(SYNTHETIC_SPEC, tiny_args(dataset_for(SYNTHETIC_SPEC), model_dir, "--save-frequency", "1", *extra))


def _files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


@pytest.mark.slow
def test_resume_from_an_earlier_epoch_moves_the_later_files_aside(tmp_path):
    out = tmp_path / FOLDER
    assert _train(tmp_path, "--end-epoch", "3") == 0
    old = {n: (out / n).read_bytes() for n in (f"{TINY}_ep-0002.pth", f"{TINY}_ep-0003.pth")}
    assert _train(tmp_path, "--resume-epoch", "1", "--end-epoch", "2", "--keep-checkpoints", "1") == 0
    aside = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and {n: (aside[0] / n).read_bytes() for n in old} == old  # the old branch, intact
    assert (aside[0] / f"{TINY}_last.pth").is_file()
    latest = (out / "latest").read_text().strip()
    assert latest == f"{TINY}_ep-0002.pth" and (out / latest).is_file()
    assert (out / latest).read_bytes() != old[latest]  # this branch's epoch 2, not the old one
    assert not (out / f"{TINY}_ep-0003.pth").exists()
    assert "moved the" in (out / "train.log").read_text().split("Start training")[-2]
    assert _train(tmp_path, "--resume-epoch", "auto", "--end-epoch", "3") == 0  # continues this branch
    assert load_checkpoint_file(out / f"{TINY}_ep-0003.pth")["epoch"] == 3
    assert "Resumed model" in (log := (out / "train.log").read_text()) and \
        f"from `{out / latest}' at epoch 2" in log.split("Start training")[-1]


def test_finished_run_is_said_to_be_finished_and_nothing_is_written(tmp_path, capsys):
    out = tmp_path / FOLDER
    assert _train(tmp_path, "--end-epoch", "2") == 0
    before = _files(out)
    capsys.readouterr()
    for extra in (["--end-epoch", "2"], ["--end-epoch", "1"]):
        assert _train(tmp_path, "--resume-epoch", "auto", *extra) == 0
        said = capsys.readouterr().out.strip().splitlines()
        assert said[-1].startswith(f"{out}: training is complete") and f"{TINY}_best.pth, val top-1" in said[-1]
        assert _files(out) == before
    assert _train(tmp_path, "--resume-epoch", "auto", "--end-epoch", "3") == 0
    assert (out / "train_results_s0002.csv").is_file() and not list(out.glob("*_r2.csv"))


@pytest.mark.slow
def test_auto_starts_after_a_run_killed_before_its_first_checkpoint(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    args = tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "2")
    env = {**os.environ, "TEST_MARK_DIR": str(marks), "TEST_MARK_AT": "0:0", "TEST_STEP_SLEEP": "5"}
    proc = subprocess.Popen([sys.executable, str(CHILD), *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (marks / "rank0").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()  # SIGKILL inside the first epoch: header-only CSVs, no checkpoint
    proc.wait(timeout=60)
    out = tmp_path / FOLDER
    assert (out / "train_results_s0000.csv").is_file() and not list(out.glob("*.pth"))
    for _ in range(2):  # the documented requeue recipe, twice: it starts, then it continues
        assert _train(tmp_path, "--resume-epoch", "auto", "--end-epoch", "2") == 0
    assert load_checkpoint_file(out / f"{TINY}_ep-0002.pth")["epoch"] == 2
    aside = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and (aside[0] / "train_results_s0000.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_while_the_run_starts_gives_the_requeue_exit(tmp_path, sig):
    mark = tmp_path / "starting"
    args = tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "1")
    env = {**os.environ, "TEST_START_MARK": str(mark), "TEST_START_SLEEP": "30"}
    proc = subprocess.Popen([sys.executable, str(CHILD), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, sig)  # inside the label scan
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == REQUEUE_EXIT, err[-2000:]
    said = [ln for ln in err.splitlines() if "while the run was starting" in ln]
    assert len(said) == 1 and sig.name in said[0] and "Traceback" not in err
    folder = tmp_path / FOLDER
    assert not (folder / "run.lock").exists() and not list(folder.glob("*.pth"))


def test_mid_epoch_resume_on_another_training_list_is_refused(tmp_path, monkeypatch, signals_to_self):
    root = tmp_path / "root"
    shutil.copytree(dataset_for(SYNTHETIC_SPEC).parents[1], root)
    dataset = root / "data" / dataset_for(SYNTHETIC_SPEC).name
    call = loop.TrainStep.__call__

    def signal_after_first_step(self, *args, **kwargs):
        out = call(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal: training stops after this step
        return out

    monkeypatch.setattr(loop.TrainStep, "__call__", signal_after_first_step)
    with tiny_network():
        args = tiny_args(dataset, tmp_path / "runs", "--end-epoch", "1")
        assert main(SYNTHETIC_SPEC, args) == REQUEUE_EXIT
    monkeypatch.setattr(loop.TrainStep, "__call__", call)
    last = tmp_path / "runs" / FOLDER / f"{TINY}_last.pth"
    ckpt = load_checkpoint_file(last)
    assert ckpt["position"]["iteration"] >= 1
    csv_path = root / "labels" / SYNTHETIC_SPEC.train_csv
    rows = csv_path.read_text().splitlines()
    records, _ = load_records(csv_path, dataset / "jpg", SYNTHETIC_SPEC.timeslices, save_dictionary=False)
    assert ckpt["position"]["train_list"] == train_list_fingerprint(records)
    csv_path.write_text("\n".join([rows[0], rows[2], rows[1], *rows[3:]]) + "\n")  # two rows swapped
    with tiny_network():
        assert main(SYNTHETIC_SPEC, args + ["--resume-epoch", "auto"]) == 1
    log_text = (tmp_path / "runs" / FOLDER / "train.log").read_text()
    assert "saved inside an epoch over another training list" in log_text
    csv_path.write_text("\n".join(rows) + "\n")  # the same list again: the epoch continues
    with tiny_network():
        assert main(SYNTHETIC_SPEC, args + ["--resume-epoch", "auto"]) == 0
    assert load_checkpoint_file(tmp_path / "runs" / FOLDER / f"{TINY}_ep-0001.pth")["epoch"] == 1
