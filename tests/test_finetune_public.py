"""Fine-tuning SRTG from public weights end to end: torchvision's MC3-18 file -> ``srtg_tv_mc3_18`` trained one tiny
epoch -> evaluate.py and predict.py with ``--checkpoint`` alone, in torchvision's RGB input convention."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_helpers import TINY_ARGS, load_script
from evalkit import COLOURS, write_colour_set
from pretrained_peers import save_peer

import evaluate
import predict
from evaluation.inference import load_model
from evaluation.views import decode_clip_frames, make_views, view_config
from network.config import TORCHVISION_INPUT
from train.results.checkpoint import checkpoint_path


@pytest.mark.slow
def test_srtg_on_a_torchvision_backbone_trains_evaluates_and_predicts(tmp_path: Path, capsys) -> None:
    weights, _ = save_peer("torchvision", "mc3_18", tmp_path)
    root = write_colour_set(tmp_path / "colours", videos_per_class=2, val_per_class=1, videos_dir=tmp_path / "videos")
    module = load_script("train_synthetic")
    args = ["--dataset", str(root), "--model-dir", str(tmp_path / "runs"), *TINY_ARGS, "--network", "srtg_tv_mc3_18",
            "--pretrained_3d", str(weights), "--end-epoch", "1"]
    assert module.main(module.SPEC, args) == 0
    ckpt = checkpoint_path(tmp_path / "runs" / "srtg_tv_mc3_18_gates_False", "srtg_tv_mc3_18", 1)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["input_spec"] == TORCHVISION_INPUT.to_dict() and saved["network"] == "srtg_tv_mc3_18"
    assert sum(".sar." in k for k in saved["state_dict"]) > 0 and saved["num_classes"] == len(COLOURS)

    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(ckpt), "--clips", "1", "--crops", "1", "--workers", "0",
                          "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["network"] == "srtg_tv_mc3_18" and result["videos"] == len(COLOURS) and result["failed"] == 0

    capsys.readouterr()
    video = sorted((tmp_path / "videos").glob("*_002.mp4"))[0]
    assert predict.main([str(video), "--checkpoint", str(ckpt), "--clips", "1", "--json", "--device", "cpu"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]["top"]
    assert {t["class"] for t in top} == set(COLOURS)
    # the same probabilities by hand, with the checkpoint's convention (RGB), and not with the original's (BGR)
    loaded = load_model(ckpt)
    assert loaded.channel_order == "RGB"
    cfg = view_config(loaded.config, clip_length=None, clip_size=None, frame_interval=None, clips=1, crops=1,
                      dataset=loaded.dataset)
    frames, _ = decode_clip_frames(video, cfg)
    by_name = {t["class"]: t["probability"] for t in top}
    with torch.no_grad():
        for order, same in (("RGB", True), ("BGR", False)):
            probs = loaded.model(make_views(frames, cfg, loaded.mean, loaded.std, order)).softmax(1).mean(0)
            mine = {loaded.classes[i]: float(p) for i, p in enumerate(probs)}
            close = all(abs(mine[c] - by_name[c]) < 1e-5 for c in COLOURS)
            assert close == same, order
