"""Clip-consistent augmentations, geometry policies, normalisation and the BGR convention."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data.pipeline.video_augment import (
    AUGMENTATIONS,
    NOISE_SCALE,
    apply_augment,
    colour_enhance,
    draw_augment,
    gaussian_noise,
    hue_saturation,
)
from data.pipeline.video_transforms import POLICIES, build_transform, crop_box
from network.config import get_config

CFG = get_config()
IDENTITY = {"mean": [0.0] * 3, "std": [1 / 255] * 3}  # normalised output == raw pixel values


def textured(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture (T, H, W, 3) uint8: every augmentation visibly changes it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (t, h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    big = np.kron(small, np.ones((1, 8, 8, 1), np.float32))[:, :h, :w]
    return big.astype(np.uint8)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_each_augmentation_runs_and_is_the_same_on_every_frame(name: str) -> None:
    frames = np.repeat(textured(1, 40, 56), 4, axis=0)
    rng = np.random.default_rng(1)
    kwargs = AUGMENTATIONS[name][0](rng)
    if name == "gaussian_blur":
        kwargs = {"sigma": 0.3}  # the smaller sigmas barely move a pixel
    out = apply_augment(frames, [(name, kwargs)])
    assert out.shape == (4, 40, 56, 3) and out.dtype == np.uint8
    assert (out == out[:1]).all(), f"{name} changed frames differently"
    assert not np.array_equal(out, frames), f"{name} did nothing"


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("train", [True, False])
def test_identical_frames_stay_identical_through_the_whole_transform(policy: str, train: bool) -> None:
    frames = np.repeat(textured(1, 72, 96), 6, axis=0)
    transform = build_transform(policy, train, CFG["mean"], CFG["std"], p_any=1.0, p_each=1.0,
                                augment=train, flip=train)
    for seed in range(4):
        clip = transform(frames, (6, 48, 48), rng=np.random.default_rng(seed))
        assert clip.shape == (3, 6, 48, 48) and clip.dtype == torch.float32 and clip.is_contiguous()
        assert torch.equal(clip, clip[:, :1].expand_as(clip))


def test_draw_probabilities_and_one_of() -> None:
    rng = np.random.default_rng(0)
    draws = [draw_augment(rng) for _ in range(2000)]
    empty = sum(not d for d in draws) / len(draws)
    assert 0.2 < empty < 0.3  # 1 - 0.8 + 0.8 * 0.6**8 = 0.213
    names = [n for d in draws for n, _ in d]
    assert all(not ({"perspective", "rotate"} <= {n for n, _ in d}) for d in draws)
    for name in AUGMENTATIONS:
        share = names.count(name) / len(draws)
        assert 0.8 * (0.2 if name in ("perspective", "rotate") else 0.4) * 0.8 < share < 0.8 * 0.4 * 1.2
    assert draw_augment(rng, p_any=0.0) == []


@pytest.mark.parametrize("size", [(4, 32, 32), (4, 112, 112), (8, 56, 80)])
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_shapes_including_upscaled_small_frames(policy: str, size: tuple[int, int, int]) -> None:
    frames = textured(size[0], 64, 86)  # synthetic-size frames, upscaled when the clip is larger
    for train in (True, False):
        clip = build_transform(policy, train, CFG["mean"], CFG["std"])(frames, size)
        assert clip.shape == (3, *size) and clip.dtype == torch.float32 and torch.isfinite(clip).all()


def test_normalisation_keeps_bgr_channel_order() -> None:
    frames = np.empty((3, 20, 30, 3), np.uint8)
    frames[...] = (10, 100, 200)  # B, G, R as OpenCV decodes them
    clip = build_transform("none", False, CFG["mean"], CFG["std"])(frames, (3, 16, 16))
    for c, value in enumerate((10, 100, 200)):
        expected = (value / 255 - CFG["mean"][c]) / CFG["std"][c]
        assert torch.allclose(clip[c], torch.full_like(clip[c], expected), atol=1e-5)


def test_colour_ops_treat_frames_as_bgr() -> None:
    red = np.zeros((1, 8, 8, 3), np.uint8)
    red[..., 2] = 200  # pure red in BGR
    shifted = hue_saturation(red, hue=16, saturation=0)[0, 0, 0].tolist()
    # red + hue moves towards yellow (green rises); an RGB reading would call it blue and move to magenta
    assert shifted[2] >= 190 and shifted[1] > 10 and shifted[0] == 0
    grey = np.full((2, 8, 8, 3), 120, np.uint8)
    assert np.array_equal(colour_enhance(grey, 1.5), grey)
    assert np.array_equal(hue_saturation(grey, 16, 0), grey)


def test_noise_and_colour_enhance_match_their_formulas() -> None:
    clip = textured(2, 32, 40)
    noise = np.rint(np.random.default_rng(3).standard_normal(clip.shape[1:], dtype=np.float32) * NOISE_SCALE)
    assert np.array_equal(gaussian_noise(clip, seed=3), np.clip(clip + noise, 0, 255).astype(np.uint8))
    grey = (clip @ np.array([0.114, 0.587, 0.299]))[..., None]  # BGR luma
    expected = np.clip(grey + 1.4 * (clip - grey), 0, 255)
    assert np.abs(colour_enhance(clip, 1.4) - expected).max() <= 2


def test_eval_is_deterministic_and_train_flips_sometimes() -> None:
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    frames[:, :, 16:] = 255  # bright right half
    evaluate = build_transform("small", False, **IDENTITY)
    assert torch.equal(evaluate(frames, (2, 32, 32)), evaluate(frames, (2, 32, 32)))
    train = build_transform("none", True, **IDENTITY, flip=True)
    sides = {bool(train(frames, (2, 32, 32))[:, :, :, -1].mean() > 127) for _ in range(20)}
    assert sides == {True, False}
    assert not build_transform("none", True, **IDENTITY).flip  # motion classes must not be mirrored


def test_crop_boxes_follow_the_policies() -> None:
    rng = np.random.default_rng(0)
    # 'large' train: 360x640 -> shorter side 384 (scale 16/15), centre crop 384 = 360 px, random crop 224 = 210 px
    for _ in range(50):
        top, left, bh, bw = crop_box(360, 640, (224, 224), POLICIES["large"], True, rng)
        assert (bh, bw) == (210, 210) and 0 <= top <= 150 and 140 <= left <= 430
    # 'large' eval: 294, centre crop 294, centre crop 224 -> centred box
    top, left, bh, bw = crop_box(360, 640, (224, 224), POLICIES["large"], False, None)
    assert (bh, bw) == (274, 274) and top == 43 and left == 183
    # 'small' train: crop at clip size (original cropped 224 and upscaled, bug 24), anywhere in the frame
    boxes = [crop_box(240, 320, (112, 112), POLICIES["small"], True, rng) for _ in range(300)]
    assert {b[2:] for b in boxes} == {(91, 91)}  # 294/240 scale: 112 px of the resized frame = 91 source px
    tops = {b[0] for b in boxes}
    assert min(tops) >= 0 and max(tops) <= 240 - 91 and len(tops) > 80
    assert crop_box(64, 86, (112, 112), POLICIES["none"], True, rng) == (0, 0, 64, 86)


def test_crop_size_keeps_the_field_of_view_for_smaller_multigrid_sizes() -> None:
    frames = textured(2, 120, 160)
    full = build_transform("small", False, **IDENTITY, crop_size=112)(frames, (2, 112, 112))
    small = build_transform("small", False, **IDENTITY, crop_size=112)(frames, (2, 56, 56))
    down = torch.nn.functional.interpolate(full, size=(56, 56), mode="bilinear", antialias=True)
    assert (small - down).abs().mean() < 4  # same content at half resolution


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="policy"):
        build_transform("huge", True, CFG["mean"], CFG["std"])
    with pytest.raises(ValueError, match="uint8"):
        build_transform("small", True, CFG["mean"], CFG["std"])(np.zeros((2, 8, 8, 3), np.float32), (2, 8, 8))
