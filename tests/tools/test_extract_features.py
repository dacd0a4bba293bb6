"""tools/extract_features.py: one feature vector per video (multi-view averaged, in the model's input convention),
ids and labels beside them, a resumed run that only computes what is missing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from evalkit import COLOURS, trained_checkpoint, write_colour_set
from pretrained_peers import save_peer

import network
from evaluation.views import ViewConfig, decode_clip_frames, make_views
from tools import extract_features

SMALL = ["--clips", "2", "--crops", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return trained_checkpoint(tmp_path_factory.getbasetemp() / "evalkit")


def _read(out: Path) -> tuple[np.ndarray, dict]:
    npy, index = extract_features.output_paths(out)
    return np.load(npy), json.loads(index.read_text())


@pytest.mark.slow
def test_one_vector_per_video_and_resume(ckpt, tmp_path, monkeypatch):
    root = ckpt.parents[3] / "colours"
    args = ["--checkpoint", str(ckpt), "--dataset", str(root), *SMALL, "--save-every", "2"]
    assert extract_features.main([*args, "--out", str(tmp_path / "full")]) == 0
    full, index = _read(tmp_path / "full")
    assert full.shape == (3 * len(COLOURS), 512) and index["videos"] == full.shape[0] == len(set(index["ids"]))
    assert sorted(index["label_names"]) == sorted(label for label in COLOURS for _ in range(3))
    assert all(index["label_names"][i] == list(COLOURS)[label] for i, label in enumerate(index["labels"]))
    assert index["input_spec"]["channel_order"] == "BGR" and index["views"]["clips"] == 2
    # features differ by class: each video is nearer its own class's mean than another's
    labels = np.array(index["labels"])
    means = np.stack([full[labels == c].mean(0) for c in range(len(COLOURS))])
    assert (np.linalg.norm(full[:, None] - means[None], axis=2).argmin(1) == labels).mean() >= 2 / 3

    calls = []
    real = extract_features.features

    def stop_after_five(*a, **k):  # noqa: ANN002, ANN003
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(extract_features, "features", stop_after_five)
    with pytest.raises(KeyboardInterrupt):
        extract_features.main([*args, "--out", str(tmp_path / "part")])
    assert _read(tmp_path / "part")[0].shape[0] == 4  # saved every 2 videos
    monkeypatch.setattr(extract_features, "features", real)
    counted = []
    monkeypatch.setattr(extract_features, "features", lambda *a, **k: counted.append(1) or real(*a, **k))
    assert extract_features.main([*args, "--out", str(tmp_path / "part.npy")]) == 0
    part, part_index = _read(tmp_path / "part")
    assert len(counted) == 5 and part_index["ids"] == index["ids"]
    np.testing.assert_allclose(part, full, rtol=1e-5, atol=1e-6)

    code = extract_features.main([*args[:-2], "--clips", "1", "--crops", "1", "--out", str(tmp_path / "part")])
    assert code == 1  # another view setting: refused, the file is kept
    assert _read(tmp_path / "part")[0].shape == full.shape


@pytest.mark.slow
def test_video_files_with_public_weights(tmp_path):
    path, _ = save_peer("torchvision", "mc3_18", tmp_path)
    write_colour_set(tmp_path / "set", videos_per_class=0, val_per_class=1, videos_dir=tmp_path / "videos")
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    out = tmp_path / "tv"
    code = extract_features.main(["--network", "tv_mc3_18", "--pretrained_3d", str(path), "--clip-length", "4",
                                  "--clip-size", "32", "--frame-interval", "1", *SMALL, "--out", str(out),
                                  *map(str, videos), str(corrupt)])
    assert code == 0
    rows, index = _read(out)
    assert rows.shape == (len(videos), 512) and index["labels"] == [-1] * len(videos)
    assert index["ids"] == [str(v) for v in videos] and list(index["failed"]) == [str(corrupt)]
    assert index["input_spec"]["channel_order"] == "RGB"
    # the same numbers by hand: RGB views of torchvision's convention through the imported network
    model = network.from_pretrained(path, "torchvision", "mc3_18").eval()
    cfg = ViewConfig(clip_length=4, size=32, frame_interval=1, clips=2, crops=1)
    frames, _ = decode_clip_frames(videos[0], cfg)
    spec = model.input_spec
    with torch.no_grad():
        rgb = model.forward_features(make_views(frames, cfg, spec.mean, spec.std, "RGB")).mean(0).numpy()
        bgr = model.forward_features(make_views(frames, cfg, spec.mean, spec.std, "BGR")).mean(0).numpy()
    np.testing.assert_allclose(rows[0], rgb, rtol=1e-4, atol=1e-5)
    assert not np.allclose(rows[0], bgr, rtol=1e-3, atol=1e-4)


def test_needs_weights_and_one_input(tmp_path, capsys):
    assert extract_features.main(["--network", "r3d_18", "--out", str(tmp_path / "x"), "v.mp4"]) == 1
    assert "pass --checkpoint, or --network with --pretrained_3d" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        extract_features.main(["--network", "r3d_18", "--out", str(tmp_path / "x")])


def test_each_clip_of_a_time_sliced_video_gets_its_own_row(tmp_path):
    """Two HACS clips of one YouTube video share its id: each is its own row, named by its stored folder."""
    from data.store.frames_db import write_video
    from train.results.checkpoint import save_checkpoint

    jpg = tmp_path / "hacs" / "data" / "HACS_videos" / "jpg"
    for name, seed in (("vidA_000001_000003", 0), ("vidA_000005_000007", 5)):
        write_video(jpg / "walk" / name, list(np.random.default_rng(seed).integers(0, 256, (6, 32, 40, 3), np.uint8)))
    (tmp_path / "hacs" / "labels").mkdir()
    (tmp_path / "hacs" / "labels" / "HACS_clips_v1.1_val.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nwalk,vidA,1.0,3.0,val\nwalk,vidA,5.0,7.0,val\n")
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "r3d.pth", network.create_model("r3d_18", num_classes=2), 1,
                           network="r3d_18", classes=["walk", "run"])
    out = tmp_path / "feats"
    assert extract_features.main(["--checkpoint", str(ckpt), "--dataset", str(tmp_path / "hacs"), "--spec", "hacs",
                                  "--clips", "1", "--crops", "1", "--clip-length", "4", "--clip-size", "32",
                                  "--frame-interval", "1", "--device", "cpu", "--out", str(out)]) == 0
    rows, index = _read(out)
    assert index["ids"] == ["walk/vidA_000001_000003", "walk/vidA_000005_000007"] and index["labels"] == [0, 0]
    assert rows.shape == (2, 512) and not np.allclose(rows[0], rows[1])
