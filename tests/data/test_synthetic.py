"""The synthetic set: real format, determinism, and classes that differ only in motion."""
from __future__ import annotations

import numpy as np
import pytest

from data.catalog.labels import load_records
from data.prep import synthetic
from data.prep.synthetic import CLASSES, SYNTHETIC_SPEC, generate, render_clip
from data.store.frames_db import read_frames
from data.store.video_io import iter_frames


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    kw = dict(num_classes=3, videos_per_class=2, frames=8, size=32, val_fraction=0.5)
    generate(tmp_path / "a", seed=5, workers=1, **kw)
    generate(tmp_path / "b", seed=5, workers=2, **kw)
    generate(tmp_path / "c", seed=6, **kw)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 3 * 2 * 2 + 3 and a == b
    db = [k for k in a if k.name == "frames.db"]
    assert all(a[k] != c[k] for k in db)


def test_layout_csvs_and_records(tiny_synthetic):
    assert tiny_synthetic == SYNTHETIC_SPEC.resolve(tiny_synthetic.root)
    train, classes = load_records(tiny_synthetic.train_csv, tiny_synthetic.jpg_dir, False)
    val, _ = load_records(tiny_synthetic.val_csv, tiny_synthetic.jpg_dir, False, strict_labels=True)
    assert classes == {c: i for i, c in enumerate(CLASSES)}
    assert len(train) == len(val) == 8 and {r.n_frames for r in train + val} == {16}
    assert tiny_synthetic.train_csv.read_text().splitlines()[:2] == ["label,id,split", "move_left,move_left_0000,train"]
    assert {r.video_id for r in val} == {f"{c}_0001" for c in CLASSES}
    assert read_frames(val[0].path, [0, 15]).shape == (2, 32, 32, 3)


def _features(cls: str, clips: int = 48, frames: int = 12, size: int = 32):
    """Per clip and frame: object area, circular-mean x and y of the object, mean intensity."""
    area, pos, mean = [], [], []
    angle = 2 * np.pi * np.arange(size) / size
    for v in range(clips):
        clip, alpha = render_clip(cls, np.random.default_rng([99, CLASSES.index(cls), v]), frames, size,
                                  return_masks=True)
        area.append(alpha.sum((1, 2)))
        ex = (alpha.sum(1) * np.exp(1j * angle)).sum(1)  # (T,) circular mean along x, then y
        ey = (alpha.sum(2) * np.exp(1j * angle)).sum(1)
        pos.append(np.stack([np.angle(ex), np.angle(ey)], 1) * size / (2 * np.pi))
        mean.append(clip.mean((1, 2, 3)))
    return np.array(area), np.array(pos), np.array(mean)


def test_single_frames_look_alike_and_only_motion_differs():
    feats = {c: _features(c) for c in CLASSES}
    for t in (0, 11):  # first and last frame: area and intensity have the same mean for every class
        for k in (0, 2):
            values = {c: f[k][:, t] for c, f in feats.items()}
            pooled = np.concatenate(list(values.values()))
            se = pooled.std() / np.sqrt(len(values["grow"]))
            assert all(abs(v.mean() - pooled.mean()) < 4 * se for v in values.values()), (t, k)
        for c, (_, pos, _) in feats.items():  # positions are uniform on the frame for every class
            hist = np.histogram(pos[:, t, 0] % 32, bins=4, range=(0, 32))[0]
            assert hist.min() >= 4, (c, t, hist)

    def step(pos, axis):  # per-frame displacement on the torus
        d = np.diff(pos[:, :, axis], axis=1)
        return np.median((d + 16) % 32 - 16)

    assert step(feats["move_right"][1], 0) > 0.3 and step(feats["move_left"][1], 0) < -0.3
    assert step(feats["move_down"][1], 1) > 0.3 and step(feats["move_up"][1], 1) < -0.3
    assert abs(step(feats["move_right"][1], 1)) < 0.1 and abs(step(feats["grow"][1], 0)) < 0.1
    growth = {c: np.median(np.diff(np.log(feats[c][0] + 1), axis=1)) for c in ("grow", "shrink", "rotate_cw")}
    assert growth["grow"] > 0.02 and growth["shrink"] < -0.02 and abs(growth["rotate_cw"]) < 0.005


def test_rotation_direction_is_visible():
    """The off-centre marker turns clockwise on screen (image y down) for rotate_cw, the other way for ccw."""
    turns = {}
    for cls in ("rotate_cw", "rotate_ccw"):
        centre, angle, _ = synthetic.motion(cls, np.random.default_rng(0), 4, 64)
        marker = np.stack([np.cos(angle), np.sin(angle)], 1) * 10  # marker offset direction in pixels
        turns[cls] = marker[0, 0] * marker[1, 1] - marker[0, 1] * marker[1, 0]  # > 0: clockwise, y down
    assert turns["rotate_cw"] > 0 > turns["rotate_ccw"]


def test_videos_option_writes_decodable_files(tmp_path):
    paths = generate(tmp_path / "s", num_classes=2, videos_per_class=1, frames=10, size=32, val_fraction=0.0,
                     videos_dir=tmp_path / "videos")
    mp4 = tmp_path / "videos" / "move_right" / "move_right_0000.mp4"
    decoded = np.stack(list(iter_frames(mp4)))
    stored = read_frames(paths.jpg_dir / "move_right" / "move_right_0000", range(10))
    assert decoded.shape == stored.shape == (10, 32, 32, 3)
    assert np.abs(decoded.astype(int) - stored.astype(int)).mean() < 12
    assert paths.val_csv.read_text() == "label,id,split\n"


def test_cli_and_bad_arguments(tmp_path, capsys):
    assert synthetic.main(["--out", str(tmp_path / "o"), "--classes", "2", "--videos-per-class", "2",
                           "--frames", "4", "--size", "16"]) == 0
    assert len(list((tmp_path / "o" / "data" / "Synthetic_videos" / "jpg").glob("*/*/frames.db"))) == 4
    assert synthetic.main(["--out", str(tmp_path / "p"), "--classes", "9"]) == 2
    with pytest.raises(ValueError, match="even size"):
        generate(tmp_path / "q", size=33)
    with pytest.raises(ValueError, match="unknown synthetic class"):
        render_clip("jump", np.random.default_rng(0))
