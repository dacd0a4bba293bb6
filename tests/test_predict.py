"""predict.py on real H.264 files: the trained model's classes, JSON output, one-line errors for bad files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evalkit import COLOURS, NETWORK, trained_checkpoint

import predict
from data.catalog.labels import dictionary_path
from data.store.video_io import write_video_file
from evaluation.views import ViewConfig, decode_clip_frames


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return trained_checkpoint(tmp_path_factory.getbasetemp() / "evalkit")


def _val_videos(ckpt: Path) -> list[Path]:
    """One held-out video per class (the ``*_006`` clips are in the val CSV, not used for training)."""
    return [ckpt.parents[3] / "videos" / f"{label}_006.mp4" for label in COLOURS]


def test_predicts_true_classes_and_reports_bad_files(ckpt, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    missing = tmp_path / "missing.mp4"
    videos = _val_videos(ckpt)
    code = predict.main([str(videos[0]), str(corrupt), *map(str, videos[1:]), str(missing), "--network", NETWORK,
                         "--checkpoint", str(ckpt), "--clips", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 1  # some videos failed
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"error: {corrupt}") and errors[1].startswith(f"error: {missing}")
    doc = json.loads(captured.out)
    by_video = {Path(r["video"]).name: r for r in doc["results"]}
    assert "error" in by_video["corrupt.mp4"] and "not found" in by_video["missing.mp4"]["error"]
    for video in videos:
        entry = by_video[video.name]
        top = entry["top"]
        assert top[0]["class"] == video.stem.split("_")[0]  # the true class
        assert len(top) == len(COLOURS) and sum(t["probability"] for t in top) == pytest.approx(1.0, abs=1e-3)
        assert entry["frames"] == 8 and entry["views"] == 2


def test_labels_file_and_text_output(ckpt, capsys):
    video = _val_videos(ckpt)[2]
    labels_json = dictionary_path(ckpt.parents[3] / "colours" / "labels" / "synthetic_val.csv")
    code = predict.main([str(video), "--network", NETWORK, "--checkpoint", str(ckpt), "--labels", str(labels_json),
                         "--clips", "1", "--top", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(str(video)) and "1 clips x 1 crops" in out[0]
    assert len(out) == 3 and out[1].split()[:2] == ["1.", video.stem.split("_")[0]]


def test_wrong_label_count_is_one_line_error(ckpt, tmp_path, capsys):
    labels = tmp_path / "two_classes.csv"
    labels.write_text("label,id\nred,a\ngreen,b\n")
    code = predict.main([str(_val_videos(ckpt)[0]), "--network", NETWORK, "--checkpoint", str(ckpt),
                         "--labels", str(labels)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: ") and "2 class names for a 3-class model" in err[-1]


def test_decoding_keeps_only_the_sampled_frames(tmp_path):
    """PyAV decoding returns exactly the uniformly sampled frames of the file, resized to the short side."""
    levels = np.arange(12) * 18 + 20  # frame t is grey level 20 + 18 t: its mean identifies it through H.264
    clip = np.broadcast_to(levels[:, None, None, None], (12, 36, 48, 3)).astype(np.uint8)
    path = tmp_path / "ramp.mp4"
    write_video_file(path, clip, fps=25)
    cfg = ViewConfig(clip_length=4, size=32, frame_interval=2, clips=2)
    frames, n = decode_clip_frames(path, cfg)
    indices = [i for c in cfg.frame_indices(12) for i in c]
    assert n == 12 and frames.shape == (8, 32, 43, 3) and len(set(indices)) > 4
    assert np.abs(frames.reshape(8, -1).mean(axis=1) - levels[indices]).max() < 6
