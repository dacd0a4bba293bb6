"""From an official download to an evaluated model with no code: data.prep.prepare -> the matching train script ->
evaluate.py --checkpoint -> predict.py VIDEO --checkpoint, on mock annotation files (tests/data/mock_downloads.py)
around videos the project writes (.avi, .mp4, .mkv, .webm)."""
from __future__ import annotations

import json

import pytest
from engine_helpers import load_script, tiny_network
from marks import slow_except
from mock_downloads import MOCKS

import evaluate
import predict
from data.prep import prepare
from data.store.video_io import is_video_file
from train.results.checkpoint import load_checkpoint_file

TRAIN_ARGS = ["--clip-length", "4", "--clip-size", "16", "--batch-size", "2", "--workers", "0",
              "--train-frame-interval", "1", "--val-frame-interval", "1", "--log-interval", "1", "--lr-base", "0.01",
              "--lr-steps", "50", "--device", "cpu", "--end-epoch", "1"]
# data.prep.prepare NAME -> the script that trains it (train.py: no script of its own)
SCRIPTS = {"ucf101": "train_ucf101", "hmdb51": "train_hmdb51", "kinetics": "train_kinetics",
           "diving48": "train_diving48", "ssv2": "train", "folders": "train"}


@pytest.mark.parametrize("name", slow_except(sorted(SCRIPTS), {"ucf101", "folders"}))
def test_official_download_to_evaluated_model(tmp_path, name, capsys):
    src, ann, root = tmp_path / "download", tmp_path / "annotations", tmp_path / "prepared"
    want = MOCKS[name](src, ann)
    argv = [name, "--videos", str(src), "--out", str(root), "--workers", "1", "--val-fraction", "0.34"]
    argv += ["--annotations", str(ann)] if name != "folders" else []
    argv += ["--variant", "400"] if name == "kinetics" else []
    assert prepare.main(argv) == 0
    module = load_script(SCRIPTS[name])
    spec = module.spec_for(["--dataset", str(root)]) if SCRIPTS[name] == "train" else module.SPEC
    variant = ["--variant", "400"] if name == "kinetics" else []
    classes = want["classes"]
    with tiny_network() as tiny:
        results = tmp_path / "results"
        assert module.main(spec, ["--dataset", str(root), "--network", tiny, "--model-dir", str(results),
                                  *variant, *TRAIN_ARGS]) == 0
        ckpt_path = results / f"{tiny}_gates_False" / f"{tiny}_ep-0001.pth"
        ckpt = load_checkpoint_file(ckpt_path)
        assert ckpt["classes"] == classes  # the official order
        assert ckpt["state_dict"]["fc.weight"].shape[0] == len(classes)  # as many outputs as the dictionary
        log_text = (results / f"{tiny}_gates_False" / "train.log").read_text()
        assert ("the label files name" in log_text) == (SCRIPTS[name] != "train")  # fewer than published
        if name == "folders":  # a generic format: the data set is named after its folder, and says so
            assert spec.name == "PREPARED" and f"Data set PREPARED: named after {root}" in log_text
        capsys.readouterr()
        assert evaluate.main(["--checkpoint", str(ckpt_path), "--clips", "2", "--crops", "1", "--workers", "0"]) == 0
        out = capsys.readouterr().out
        assert "video-level  top-1" in out and "(0 failed)" in out
        video = next(p for p in sorted(src.rglob("*")) if p.is_file() and is_video_file(p))
        assert predict.main([str(video), "--checkpoint", str(ckpt_path), "--clips", "2", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["network"] == tiny
        assert {t["class"] for t in result["results"][0]["top"]} <= set(classes)


@pytest.mark.parametrize("tool", ["train", "evaluate", "predict", "export", "profile"])
def test_a_text_file_is_not_a_checkpoint_anywhere(tmp_path, tool, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello world\n")
    if tool == "train":
        module = load_script("train_synthetic")
        with tiny_network() as tiny:
            code = module.main(module.SPEC, ["--dataset", str(tmp_path / "none"), "--network", tiny,
                                             "--pretrained_3d", str(notes), "--device", "cpu"])
    elif tool == "evaluate":
        code = evaluate.main(["--checkpoint", str(notes)])
    elif tool == "predict":
        code = predict.main([str(notes), "--checkpoint", str(notes)])
    elif tool == "export":
        code = load_script("tools/export").main(["--checkpoint", str(notes), "--format", "torchscript"])
    else:
        code = load_script("tools/profile_model").main(["--checkpoint", str(notes)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    if tool != "train":  # training stops earlier: the data set is missing (the file is never read)
        assert f"{notes}: not a PyTorch checkpoint" in err
