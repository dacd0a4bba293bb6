"""From an official download to an evaluated model with no code: data.prepare -> train script -> evaluate.py
--checkpoint -> predict.py VIDEO --checkpoint, on mock annotation files around videos the project writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluate
import predict
from data import prepare
from data.video_io import write_video_file
from engine_helpers import load_script, tiny_network
from train.checkpoint import load_checkpoint_file

CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "YoYo")
TRAIN_ARGS = ["--clip-length", "4", "--clip-size", "16", "--batch-size", "2", "--workers", "0",
              "--train-frame-interval", "1", "--val-frame-interval", "1", "--log-interval", "1", "--lr-base", "0.01",
              "--lr-steps", "50", "--device", "cpu", "--end-epoch", "1"]


def _clip(path: Path, seed: int, container: str) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = [np.full((24, 32, 3), rng.integers(0, 255, 3), np.uint8) for _ in range(8)]
    path = path.with_suffix(container)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video_file(path, frames, fps=10)
    return path


def _ucf101(tmp: Path) -> tuple[Path, Path]:
    src, ann = tmp / "UCF-101", tmp / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    train, test = [], []
    for k, cls in enumerate(CLASSES):
        for g, split in ((8, train), (9, train), (1, test)):
            name = f"v_{cls}_g{g:02d}_c01"
            _clip(src / cls / name, seed=10 * k + g, container=".avi" if g != 9 else ".mp4")
            split.append(f"{cls}/{name}.avi {k + 1}" if split is train else f"{cls}/{name}.avi")
    (ann / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (ann / "testlist01.txt").write_text("\n".join(test) + "\n")
    return src, ann


def _folders(tmp: Path) -> tuple[Path, None]:
    src = tmp / "my_videos"
    for k, cls in enumerate(("wave", "jump", "sit")):
        for v in range(3):
            _clip(src / cls / f"clip{v}", seed=10 * k + v, container=(".mp4", ".mkv", ".avi")[v])
    return src, None


@pytest.mark.parametrize("name,script,make", [("ucf101", "train_ucf101", _ucf101), ("folders", "train", _folders)])
def test_official_download_to_evaluated_model(tmp_path, name, script, make, capsys):
    src, ann = make(tmp_path)
    root = tmp_path / "prepared"
    argv = [name, "--videos", str(src), "--out", str(root), "--workers", "1"]
    argv += ["--annotations", str(ann)] if ann else ["--val-fraction", "0.34"]
    assert prepare.main(argv) == 0
    module = load_script(script)
    spec = module.spec_for(["--dataset", str(root)]) if script == "train" else module.SPEC
    with tiny_network() as tiny:
        results = tmp_path / "results"
        assert module.main(spec, ["--dataset", str(root), "--network", tiny, "--model-dir", str(results),
                                  *TRAIN_ARGS]) == 0
        ckpt_path = results / f"{tiny}_gates_False" / f"{tiny}_ep-0001.pth"
        ckpt = load_checkpoint_file(ckpt_path)
        assert ckpt["num_classes"] == 3 and ckpt["state_dict"]["fc.weight"].shape[0] == 3  # the dictionary's classes
        log_text = (results / f"{tiny}_gates_False" / "train.log").read_text()
        assert ("fewer than UCF101's 101" in log_text) == (name == "ucf101")  # one warning line, not an error
        capsys.readouterr()
        assert evaluate.main(["--checkpoint", str(ckpt_path), "--clips", "2", "--crops", "1", "--workers", "0"]) == 0
        out = capsys.readouterr().out
        assert "video-level  top-1" in out and "3 videos (0 failed)" in out
        video = next(p for p in sorted(src.rglob("*")) if p.is_file())
        assert predict.main([str(video), "--checkpoint", str(ckpt_path), "--clips", "2", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["network"] == tiny and len(result["results"][0]["top"]) == 3
        names = {t["class"] for t in result["results"][0]["top"]}
        assert names == (set(CLASSES) if name == "ucf101" else {"wave", "jump", "sit"})


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
