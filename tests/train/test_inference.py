"""evaluation.inference and evaluation.views: strict checkpoint loading for inference, class names, test views."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data.pipeline.video_transforms import view_crop_boxes
from evaluation.inference import head_classes, load_class_names, load_model
from evaluation.views import ViewConfig, make_views, unique_views
from network import create_model
from network.config import get_config


def _save(path, model, prefix=""):
    torch.save({"epoch": 3, "state_dict": {prefix + k: v for k, v in model.state_dict().items()}}, path)
    return path


def test_original_srtg_checkpoint_without_sr_weights_runs_as_plain_backbone(tmp_path, caplog):
    torch.manual_seed(0)
    plain = create_model("r3d_18", num_classes=4).eval()
    ckpt = _save(tmp_path / "plain.pth", plain, "module.")
    loaded = load_model(ckpt, "srtg_r3d_18")
    assert loaded.num_classes == 4 and loaded.epoch == 3 and loaded.classes == []
    assert "SR blocks off" in caplog.text
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), plain(x), atol=1e-6)


def test_checkpoint_of_another_network_is_an_error(tmp_path):
    torch.manual_seed(0)
    ckpt = _save(tmp_path / "srtg.pth", create_model("srtg_r3d_18", num_classes=4))
    with pytest.raises(ValueError, match=r"does not fit network 'r3d_18': \d+ unknown to the model"):
        load_model(ckpt, "r3d_18")
    assert head_classes(torch.load(ckpt, weights_only=True)["state_dict"]) == 4


def test_class_names_from_json_and_csv(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"b": 1, "a": 0, "c": 2}))
    assert load_class_names(tmp_path / "d.json") == ["a", "b", "c"]
    (tmp_path / "x_train.csv").write_text("label,id\nzeta,v1\nalpha,v2\nzeta,v3\nbeta,v4\n")
    assert load_class_names(tmp_path / "x_train.csv") == ["zeta", "alpha", "beta"]  # first appearance
    (tmp_path / "bad.json").write_text(json.dumps({"a": 0, "b": 0}))
    with pytest.raises(ValueError, match="bad.json"):
        load_class_names(tmp_path / "bad.json")


def test_three_crops_cover_the_longer_side_and_frames_stay_bgr():
    assert [b[1] for b in view_crop_boxes(32, 43, 32, 3)] == [0, 6, 11] and view_crop_boxes(32, 43, 32, 1) == [
        (0, 5, 32, 32)]
    frames = np.zeros((2 * 4, 36, 64, 3), np.uint8)  # 36² boxes (32² after the resize) at columns 0, 14, 28
    frames[..., 2] = 255  # red in BGR order
    frames[:, :, :6] = 0  # a black band on the left: only the left crop sees it
    cfg = ViewConfig(clip_length=4, size=32, clips=2, crops=3)
    views = make_views(frames, cfg, **get_config())
    assert views.shape == (6, 3, 4, 32, 32)
    mean, std = get_config()["mean"], get_config()["std"]
    red = (1 - mean[2]) / std[2]
    assert views[1, 2].mean().item() == pytest.approx(red, rel=1e-5)  # centre crop: pure red in channel 2
    assert views[1, 0].mean().item() == pytest.approx(-mean[0] / std[0], rel=1e-5)  # channel 0 = blue = 0
    assert views[0, 2].mean() < views[1, 2].mean() == views[2, 2].mean()
    assert view_crop_boxes(50, 32, 32, 3) == [(0, 0, 32, 32), (9, 0, 32, 32), (18, 0, 32, 32)]  # portrait
    with pytest.raises(ValueError, match="--short-side 16 is smaller than the crop 32"):
        view_crop_boxes(50, 32, 32, 3, short_side=16)


def test_identical_views_are_computed_once():
    cfg = ViewConfig(clip_length=2, size=16, clips=3, crops=3)
    rng = np.random.default_rng(0)
    square = rng.integers(0, 255, (3 * 2, 16, 16, 3), dtype=np.uint8)
    views, inverse = unique_views(square, cfg, **get_config())
    assert views.shape[0] == 3 and inverse.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # 3 crops of a square: one
    clips = [[0, 1], [0, 1], [2, 3]]  # a short video repeats its first clip
    square[2:4] = square[0:2]
    views, inverse = unique_views(square, cfg, **get_config(), clips=clips)
    assert views.shape[0] == 2 and inverse.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert torch.equal(make_views(square, cfg, **get_config()), views[inverse])  # the same views, computed once
