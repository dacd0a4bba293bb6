"""The model's channel order reaches the pixels: 'RGB' normalises the decoded BGR frames with channels swapped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data.pipeline.video_transforms import build_transform, normalise

MEAN, STD = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)


def _frames(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)  # (T, H, W, 3) BGR


def test_normalise_rgb_swaps_the_decoded_channels_before_mean_and_std() -> None:
    x = torch.from_numpy(_frames()).permute(0, 3, 1, 2)  # (T, 3, H, W), B G R
    out = normalise(x, MEAN, STD, "RGB")
    for c, source in enumerate((2, 1, 0)):  # output channel c is input channel 2 - c
        expected = (x[:, source].float() / 255 - MEAN[c]) / STD[c]
        assert torch.allclose(out[c], expected, atol=1e-5)
    assert torch.allclose(normalise(x, MEAN, STD)[0], (x[:, 0].float() / 255 - MEAN[0]) / STD[0], atol=1e-5)
    with pytest.raises(ValueError, match="channel_order must be one of BGR, RGB, got 'rgb'"):
        normalise(x, MEAN, STD, "rgb")


@pytest.mark.parametrize("train", [False, True])
def test_transform_in_rgb_is_the_bgr_clip_with_channels_swapped(train: bool) -> None:
    """Same crop, flip and augmentation draws (same rng): only the output channel order differs."""
    kwargs = {"crop_size": 32}
    bgr = build_transform("small", train, MEAN, STD, **kwargs)
    rgb = build_transform("small", train, MEAN[::-1], STD[::-1], channel_order="RGB", **kwargs)
    frames = _frames(1)
    a = bgr(frames, (4, 32, 32), np.random.default_rng(7))
    b = rgb(frames, (4, 32, 32), np.random.default_rng(7))
    assert a.shape == b.shape == (3, 4, 32, 32)
    assert torch.allclose(b, a.flip(0), atol=1e-5) and not torch.allclose(b, a, atol=1e-2)
