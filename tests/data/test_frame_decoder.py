"""Frame decoders: reduced-size decoding against full decode + resize, torchvision against OpenCV, headers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F

from data.prep.synthetic import render_clip
from data.store import frames_db as fdb
from data.store.frame_decoder import (
    DECODERS,
    FrameReadError,
    OpenCVDecoder,
    TorchvisionDecoder,
    choose_reduce,
    jpeg_size,
    make_decoder,
)

PSNR_BOUND = 30.0  # dB; reduced decoding differs from full decode + INTER_AREA by the resize's own error


def natural_blobs(n: int = 3, size: int = 256, quality: int = 90, **kwargs) -> list[bytes]:
    """JPEGs of the synthetic set's textured objects (smooth texture, grain, edges), ``size`` x ``size``."""
    frames = render_clip("rotate_cw", np.random.default_rng(0), frames=n, size=size)
    return [fdb.encode_jpeg(f, quality) if not kwargs else
            cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality, *sum(kwargs.items(), ())])[1].tobytes()
            for f in frames]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse)) if mse else float("inf")


def fine_noise_blobs(size: int = 256) -> list[bytes]:
    """A worst case: noise at 2-pixel scale, i.e. detail near the Nyquist limit of a 1/2 decode."""
    noise = np.random.default_rng(0).integers(0, 256, (size // 2, size // 2, 3), dtype=np.uint8)
    return [fdb.encode_jpeg(cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR))]


@pytest.mark.parametrize("content,bound", [("natural", PSNR_BOUND), ("fine noise", 20.0)])
@pytest.mark.parametrize("reduce", [2, 4, 8])
def test_reduced_decode_equals_full_decode_and_area_resize(reduce, content, bound):
    blobs = natural_blobs() if content == "natural" else fine_noise_blobs()
    decoder = OpenCVDecoder()
    full, small = decoder.decode(blobs), decoder.decode(blobs, reduce)
    assert small.shape == (len(blobs), 256 // reduce, 256 // reduce, 3) and small.dtype == np.uint8
    side = (256 // reduce,) * 2
    area = np.stack([cv2.resize(f, side, interpolation=cv2.INTER_AREA) for f in full])
    # the resize's own error: the transform's antialiased bilinear resize against INTER_AREA
    bilinear = F.resize(torch.from_numpy(full).permute(0, 3, 1, 2), list(side), antialias=True).permute(0, 2, 3, 1)
    value, own = psnr(small, area), psnr(bilinear.numpy(), area)
    print(f"{content}, 1/{reduce}: PSNR reduced decode vs full decode + INTER_AREA {value:.1f} dB "
          f"(antialiased bilinear vs INTER_AREA: {own:.1f} dB)")
    assert value > bound
    assert psnr(small, np.roll(area, 1, axis=2)) < value - 3  # a one-pixel shift is caught


def test_torchvision_decoder_matches_opencv_in_bgr_order():
    blobs = natural_blobs()
    ref = OpenCVDecoder().decode(blobs)
    got = make_decoder("torchvision", device="cpu").decode(blobs)
    assert tuple(got.shape) == ref.shape and got.device.type == "cpu"
    diff = np.abs(got.numpy().astype(int) - ref.astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
    blue = np.zeros((16, 16, 3), np.uint8)
    blue[..., 0] = 255
    assert make_decoder("torchvision").decode([fdb.encode_jpeg(blue)])[0, 8, 8, 0] > 240  # channel 0 is B


def test_registry_and_bad_input():
    assert sorted(DECODERS) == ["opencv", "torchvision"] and isinstance(make_decoder("opencv"), OpenCVDecoder)
    assert make_decoder("torchvision", device="cpu").reductions == (1,)
    with pytest.raises(ValueError, match="unknown frame decoder 'nvjpeg'; choose one of"):
        make_decoder("nvjpeg")
    with pytest.raises(ValueError, match="reduce must be one of"):
        OpenCVDecoder().decode(natural_blobs(1, 32), 3)
    good = natural_blobs(1, 32)[0]
    for decoder in (OpenCVDecoder(), TorchvisionDecoder()):
        with pytest.raises(FrameReadError) as err:
            decoder.decode([good, b"not a jpeg"])
        assert err.value.position == 1
        with pytest.raises(FrameReadError, match="^x/frames.db frame 10: frame is not a decodable JPEG$"):
            fdb.decode_clip([good, b"not a jpeg"], [0, 1, 1], "x/frames.db", decoder, frame_indices=[4, 9])


@pytest.mark.parametrize("progressive", [0, 1])
def test_jpeg_size_reads_the_header(progressive):
    frame = render_clip("grow", np.random.default_rng(1), frames=1, size=40)[0][:, :37]
    blob = cv2.imencode(".jpg", np.ascontiguousarray(frame), [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])[1].tobytes()
    assert jpeg_size(blob) == (40, 37)
    assert jpeg_size(b"garbage") is None and jpeg_size(blob[:20]) is None


def test_choose_reduce_keeps_the_needed_side():
    assert choose_reduce(256, 112) == 2 and choose_reduce(256, 148) == 1 and choose_reduce(512, 148) == 2
    assert choose_reduce(256, 32) == 8 and choose_reduce(255, 32) == 4  # floor: never below what is needed
    assert choose_reduce(256, 32, (1, 2)) == 2 and choose_reduce(256, None) == 1 and choose_reduce(100, 200) == 1
