"""Training with ``--source video`` on a data set that has only its mp4 files and ``videos.json`` (no frame store):
one tiny epoch and its evaluation, a one-line error without the list, and a real SIGTERM mid-epoch then
``--resume-epoch auto`` giving the uninterrupted run's weights bit for bit (the resume harness of test_resume.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from engine_helpers import TINY, finish_child, load_script, start_child, tiny_args, tiny_network, wait_for
from test_resume import FOLDER, RANDOM, _rows, _weights

import evaluate
from data.catalog.spec import manifest_path
from data.prep.convert import Job
from data.prep.synthetic import SYNTHETIC_SPEC, generate
from data.prep.video_list import list_videos
from data.store.video_clips import FrameOptions
from train.results.checkpoint import load_checkpoint_file
from train.results.preempt import REQUEUE_EXIT


@pytest.fixture(scope="module")
def video_set(tmp_path_factory) -> Path:
    """4 classes x 3 synthetic mp4 clips of 8 frames at 32² (2 train + 1 val each), listed in videos.json only."""
    root = tmp_path_factory.mktemp("video-set")
    generate(root / "gen", num_classes=4, videos_per_class=3, frames=8, size=32, val_fraction=1 / 3,
             videos_dir=root / "videos")
    (root / "labels").mkdir()
    for path in (root / "gen" / "labels").iterdir():
        (root / "labels" / path.name).write_bytes(path.read_bytes())
    jpg = root / "data" / SYNTHETIC_SPEC.folder / "jpg"
    jobs = [Job(v, jpg / v.parent.name / v.stem) for v in sorted((root / "videos").rglob("*.mp4"))]
    sources, failures = list_videos(jobs, jpg, root / "videos", FrameOptions())
    assert not failures and len(sources.entries) == 12
    sources.write(manifest_path(jpg))
    assert not jpg.exists()
    return root


@pytest.fixture(scope="module")
def tiny():
    with tiny_network() as name:
        yield name


@pytest.mark.slow
def test_one_tiny_epoch_from_video_files(tiny, video_set, tmp_path):
    module = load_script("train_synthetic")
    assert module.main(module.SPEC, tiny_args(video_set, tmp_path, "--end-epoch", "1", "--source", "video")) == 0
    out = tmp_path / f"{tiny}_gates_False"
    ckpt = load_checkpoint_file(out / f"{tiny}_ep-0001.pth")
    assert ckpt["epoch"] == 1 and ckpt["config"]["data"]["source"] == "video" and len(ckpt["classes"]) == 4
    assert int(_rows(out / "train_results_s0000.csv")[0]["Samples"]) == 8
    assert int(_rows(out / "val_results_s0000.csv")[0]["Samples"]) == 4
    assert "skipping unreadable clip" not in (out / "train.log").read_text()
    # evaluate.py reads the files too: the checkpoint's --source is the default
    args = ["--checkpoint", str(out / f"{tiny}_ep-0001.pth"), "--clips", "2", "--crops", "1", "--workers", "0"]
    assert evaluate.main([*args, "--out", str(tmp_path / "eval")]) == 0
    result = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert result["source"] == "video" and result["videos"] == 4 and result["failed"] == 0 and result["views"] == 8
    assert evaluate.main([*args, "--source", "store", "--out", str(tmp_path / "eval-store")]) == 1


def test_store_source_without_frames_is_one_line_error(tiny, video_set, tmp_path, caplog):
    module = load_script("train_synthetic")
    assert module.main(module.SPEC, tiny_args(video_set, tmp_path, "--end-epoch", "1")) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "data.convert" in errors[0], errors
    caplog.clear()
    assert module.main(module.SPEC, tiny_args(video_set / "gen", tmp_path / "b", "--end-epoch", "1",
                                              "--source", "video")) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "--no-convert" in errors[0] and "videos.json" in errors[0], errors


def _start(dataset: Path, model_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return start_child(tiny_args(dataset, model_dir, *RANDOM, "--source", "video", *extra), env)


def _run(dataset: Path, model_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    done = finish_child(_start(dataset, model_dir, *extra))
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_sigterm_mid_epoch_then_auto_resume_is_bit_identical(video_set, tmp_path):
    _run(video_set, tmp_path / "straight")
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _start(video_set, tmp_path / "split", "--workers", "2",
                  env={"TEST_MARK_DIR": str(marks), "TEST_MARK_AT": "1:1"})
    wait_for(marks / "rank0", proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == REQUEUE_EXIT, err[-3000:]
    out = tmp_path / "split" / FOLDER
    last = load_checkpoint_file(out / f"{TINY}_last.pth")
    assert last["epoch"] == 1 and 2 <= last["position"]["iteration"] < 4, last.get("position")
    _run(video_set, tmp_path / "split", "--workers", "2", "--resume-epoch", "auto")
    a = _weights(tmp_path / "straight" / FOLDER / f"{TINY}_ep-0003.pth")
    b = _weights(out / f"{TINY}_ep-0003.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), [
        k for k in a if not torch.equal(a[k], b[k])]
    rows = _rows(out / "train_results_s0001.csv")
    assert [r["Epoch"] for r in rows] == ["2", "3"] and int(rows[1]["Samples"]) == 8
