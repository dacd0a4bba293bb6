"""evaluate.py end to end: a briefly trained model, multi-view testing, outputs, DDP sharding, checkpoint checks."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from evalkit import CLIP_LENGTH, CLIP_SIZE, COLOURS, NETWORK, trained_checkpoint

import evaluate
from train.distributed import free_port

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--clips", "1", "--crops", "1", "--workers", "0"]
MULTI = ["--clips", "2", "--crops", "3", "--workers", "0"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return trained_checkpoint(tmp_path_factory.getbasetemp() / "evalkit")


@pytest.fixture(scope="module")
def multiview(ckpt, tmp_path_factory) -> tuple[Path, str]:
    """Output folder and printed text of one single-process 2 clips x 3 crops evaluation."""
    out = tmp_path_factory.mktemp("multiview")
    # spec, data set, clip settings and classes all come from the checkpoint and its results folder
    code = evaluate.main(["--checkpoint", str(ckpt), *MULTI, "--out", str(out)])
    assert code == 0
    return out


def _data_root(ckpt: Path) -> Path:
    return ckpt.parents[3] / "colours"


def _probabilities(out: Path) -> list[tuple[str, str, float]]:
    with open(out / "predictions.csv", newline="") as fh:
        return [(r["video_id"], r["prediction"], float(r["probability"])) for r in csv.DictReader(fh)]


def test_multiview_evaluation_beats_chance(multiview):
    out = multiview
    result = json.loads((out / "results.json").read_text())
    chance = 1 / len(COLOURS)
    assert result["dataset"] == "SYNTHETIC" and result["network"] == NETWORK
    assert (result["videos"], result["failed"], result["views"]) == (9, 0, 9 * 2 * 3)
    assert (result["clip_length"], result["clip_size"], result["frame_interval"]) == (CLIP_LENGTH, CLIP_SIZE, 1)
    assert result["video_top1"] >= chance + 0.3 and result["clip_top1"] >= chance + 0.3
    assert result["video_top5"] == 1.0  # 3 classes: the top 5 holds all of them
    assert set(result["per_class"]) == set(COLOURS)
    assert sum(map(sum, result["confusion"])) == 9
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(_probabilities(out)) == 9
    with open(out / "per_class.csv", newline="") as fh:
        assert [r["class"] for r in csv.DictReader(fh)] == list(COLOURS)


@pytest.mark.slow
def test_ddp_torchrun_matches_single_process(ckpt, multiview, tmp_path):
    single, ddp = multiview, tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-port", str(free_port()), str(REPO / "evaluate.py"), "--checkpoint", str(ckpt), *MULTI,
           "--device", "cpu", "--out", str(ddp)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((ddp / "results.json").read_text())
    assert result["world_size"] == 2 and result["views"] == 9 * 2 * 3
    assert "video-level  top-1" in proc.stdout and "clip-level" in proc.stdout
    a, b = _probabilities(single), _probabilities(ddp)
    assert [r[:2] for r in a] == [r[:2] for r in b]  # every video scored once, same predictions
    assert [r[2] for r in a] == pytest.approx([r[2] for r in b], abs=1e-4)


@pytest.mark.slow
def test_original_checkpoint_with_module_prefix(ckpt, tmp_path, capsys):
    """Original checkpoints: DataParallel ``module.`` keys, no classes/args (everything passed explicitly)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    original = tmp_path / "original.pth"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}, "optimizer": {}}, original)
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(original), "--network", NETWORK, "--spec", "synthetic", "--dataset",
            str(_data_root(ckpt)), "--clip-length", str(CLIP_LENGTH), "--clip-size", str(CLIP_SIZE),
            "--frame-interval", "1", *SMALL, "--out", str(out)]
    assert evaluate.main(argv) == 0
    assert json.loads((out / "results.json").read_text())["video_top1"] >= 1 / len(COLOURS) + 0.3

    state["fc.weight"], state["fc.bias"] = state["fc.weight"][:2], state["fc.bias"][:2]
    torch.save({"epoch": 1, "state_dict": state}, original)
    assert evaluate.main(argv) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "classifier has 2" in last and "synthetic_val.csv" in last


def test_labels_unknown_to_checkpoint_are_an_error(ckpt, tmp_path, capsys):
    contents = torch.load(ckpt, map_location="cpu", weights_only=True)
    contents["classes"] = ["red", "green", "purple"]
    other = tmp_path / "r3d_18_ep-0001.pth"
    torch.save(contents, other)
    assert evaluate.main(["--checkpoint", str(other), "--spec", "synthetic", *SMALL]) == 1
    err = capsys.readouterr().err
    assert "'blue'" in err and "synthetic_val.csv:" in err


@pytest.mark.slow
def test_gated_checkpoint_reports_gate_pass_rates(ckpt, tmp_path):
    """A --gates True checkpoint: evaluate.py builds the gated network from the checkpoint alone and reports the
    pass rate of each of its 8 SR blocks."""
    from data.catalog.datasets import spec_from_dict
    from network import build_model
    from train.config import RunConfig
    from train.results.checkpoint import load_checkpoint_file, save_checkpoint

    source = load_checkpoint_file(ckpt)
    config = RunConfig.from_saved(source).replace(network="srtg_r3d_18", gates=True, gate_similarity="tcc")
    torch.manual_seed(0)
    model = build_model("srtg_r3d_18", len(COLOURS), gates=True, gate_similarity="tcc")
    path = save_checkpoint(tmp_path / "srtg_r3d_18_ep-0001.pth", model, 1, network="srtg_r3d_18",
                           classes=source["classes"], config=config.to_dict(),
                           dataset=spec_from_dict(source["dataset"]).to_dict())
    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(path), *SMALL, "--out", str(out)]) == 0
    rates = json.loads((out / "results.json").read_text())["gate_pass_rates"]
    assert len(rates) == 8 and set(rates) >= {"layer1.0.sar", "layer4.1.sar"}
    assert all(r is None or 0.0 <= r <= 1.0 for r in rates.values())
    assert rates["layer4.1.sar"] == 1.0  # T = 1 there: a single frame always cycles back to itself


def test_all_nan_checkpoint_is_never_scored_and_exits_non_zero(ckpt, tmp_path, capsys):
    contents = torch.load(ckpt, map_location="cpu", weights_only=True)
    contents["state_dict"] = {k: v.float().fill_(float("nan")).to(v.dtype) if v.is_floating_point() else v
                              for k, v in contents["state_dict"].items()}
    nan = tmp_path / "nan.pth"
    torch.save(contents, nan)
    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(nan), *SMALL, "--out", str(out)]) == evaluate.EXIT_INVALID
    result = json.loads((out / "results.json").read_text())
    assert result["valid"] is False and result["nonfinite_videos"] == 9 and result["videos"] == 0
    assert result["video_top1"] != result["video_top1"]  # NaN, not 1 / 3 from NaN ranked first
    captured = capsys.readouterr()
    assert "INVALID" in captured.out and captured.err.strip().splitlines()[-1].startswith("error: 9 videos gave NaN")
    assert all(row[1] == "" for row in _probabilities_raw(out))  # no prediction written for them


def _probabilities_raw(out: Path) -> list[tuple[str, str]]:
    with open(out / "predictions.csv", newline="") as fh:
        return [(r["video_id"], r["prediction"]) for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_identical_views_are_computed_once_and_score_the_same(ckpt, tmp_path, caplog):
    """8-frame videos cut into 3 clips of 8 frames: the 3 clips are one clip, so 3 of 9 views are computed per
    video, and the result equals the 1-clip evaluation."""
    whole = ["--clip-length", "8", "--crops", "3", "--workers", "0"]
    once, thrice = tmp_path / "once", tmp_path / "thrice"
    assert evaluate.main(["--checkpoint", str(ckpt), *whole, "--clips", "1", "--out", str(once)]) == 0
    with caplog.at_level("INFO", logger="evaluate"):
        assert evaluate.main(["--checkpoint", str(ckpt), *whole, "--clips", "3", "--out", str(thrice)]) == 0
    a, b = (json.loads((o / "results.json").read_text()) for o in (once, thrice))
    assert (b["views"], b["views_computed"]) == (9 * 9, 9 * 3) and a["views_computed"] == 9 * 3
    assert "computed 27 distinct views of 81: 54 were identical" in caplog.text
    assert (a["video_top1"], a["clip_top1"]) == (b["video_top1"], b["clip_top1"])
    assert [r[2] for r in _probabilities(once)] == pytest.approx([r[2] for r in _probabilities(thrice)], abs=1e-6)
