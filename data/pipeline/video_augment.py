"""Clip-consistent photometric and geometric augmentations on ``(T, H, W, 3)`` uint8 BGR clips.

The original used imgaug (which no longer imports on NumPy 2) frozen with ``to_deterministic()`` so every
frame of a clip got the same parameters. Here the parameters are drawn ONCE per clip by `draw_augment` and
`apply_augment` applies them to all frames: point-wise ops run as one OpenCV call over the clip seen as one
tall image ``(T*H, W, 3)``; neighbourhood ops (blurs, warps) run OpenCV's uint8 kernels frame by frame with the
same kernel/matrix. A clip of identical frames stays a clip of identical frames.

Why OpenCV and not torchvision.transforms.v2 here: v2's blur/rotate/perspective convert uint8 clips to float
and were 4x-80x slower on a 16x224x224 clip (measured: gaussian blur 94 ms vs 1.2 ms, rotation 96 vs 22 ms,
motion-blur convolution 79 vs 38 ms); torchvision still does the crop/resize/flip in `data.pipeline.video_transforms`.

The list, probabilities and ranges are the original README's (p=0.8 that the sequence runs, 0.4 for each
augmentation); the released code ran a per-dataset subset (spec section 2.5). Frames are BGR (OpenCV order,
what the released weights expect): grey weights and the HSV conversion are BGR ones (original: imgaug
assumed RGB, so it shifted hue and saturation of swapped channels; we treat BGR as BGR).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

Ops = list[tuple[str, dict[str, Any]]]
NOISE_SCALE = 0.3 * 255  # the original README; the released code had 0.03*255, commented out
SPATIAL = {"gaussian_blur", "motion_blur", "perspective", "rotate"}  # ops whose effect depends on pixel scale


def tall(a: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` -> a ``(T*H, W, 3)`` view (for point-wise OpenCV ops over the whole clip)."""
    return np.ascontiguousarray(a).reshape(-1, *a.shape[2:])


def per_frame(a: np.ndarray, op: Callable[[np.ndarray, np.ndarray], Any]) -> np.ndarray:
    """Run ``op(src_frame, dst_frame)`` on every frame into a new array."""
    a = np.ascontiguousarray(a)
    out = np.empty_like(a)
    for src, dst in zip(a, out):
        op(src, dst)
    return out


def lut(a: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a per-channel ``(256, 3)`` look-up table (rounded, saturated) to the clip."""
    table = np.clip(np.rint(table), 0, 255).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(tall(a), table).reshape(a.shape)


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with a ``2*ceil(3 sigma)+1`` kernel."""
    k = 2 * math.ceil(3 * sigma) + 1
    return per_frame(a, lambda s, d: cv2.GaussianBlur(s, (k, k), sigma, dst=d))


def add(a: np.ndarray, values: list[int]) -> np.ndarray:
    """Add one integer per channel (B, G, R), saturating."""
    return lut(a, np.arange(256)[:, None] + np.asarray(values)[None, :])


def gaussian_noise(a: np.ndarray, seed: int) -> np.ndarray:
    """Add one ``(H, W, 3)`` Gaussian noise field (std 0.3*255, from ``seed``) to every frame of the clip."""
    noise = np.rint(np.random.default_rng(seed).standard_normal(a.shape[1:], dtype=np.float32) * NOISE_SCALE)
    up, down = np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)
    # each pixel has only an upward or a downward part, so saturating add then subtract == clip(x + noise)
    return per_frame(a, lambda s, d: cv2.subtract(cv2.add(s, up, dst=d), down, dst=d))


def colour_enhance(a: np.ndarray, factor: float) -> np.ndarray:
    """PIL-style colour enhancement: extrapolate away from the grey image (BGR luma weights) by ``factor``."""
    img = tall(a)
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(img, factor, grey, 1 - factor, 0).reshape(a.shape)


def motion_kernel(k: int, angle: float, direction: float) -> np.ndarray:
    """A ``k x k`` line kernel at ``angle`` degrees, weighted towards one end by ``direction`` in [-1, 1]."""
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2] = np.linspace(1 - direction, 1 + direction, k).clip(0)
    rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k), flags=cv2.INTER_LINEAR)
    total = kernel.sum()
    return kernel / total if total > 0 else np.eye(k, dtype=np.float32)[::-1] / k


def motion_blur(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every frame with ``kernel`` (reflect-101 borders)."""
    return per_frame(a, lambda s, d: cv2.filter2D(s, -1, kernel, dst=d))


def hue_saturation(a: np.ndarray, hue: int, saturation: int) -> np.ndarray:
    """Add ``hue`` (on imgaug's 0..255 hue circle) and ``saturation`` to BGR frames through HSV."""
    hsv = cv2.cvtColor(tall(a), cv2.COLOR_BGR2HSV)  # OpenCV uint8 hue is 0..179
    ramp = np.arange(256)
    table = np.stack([np.mod(ramp + round(hue * 180 / 255), 180), ramp + saturation, ramp], axis=1)
    hsv = cv2.LUT(hsv, np.clip(table, 0, 255).astype(np.uint8).reshape(256, 1, 3))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).reshape(a.shape)


def linear_contrast(a: np.ndarray, alpha: float) -> np.ndarray:
    """``128 + alpha * (v - 128)`` on every channel."""
    ramp = 128 + alpha * (np.arange(256, dtype=np.float64) - 128)
    return lut(a, np.repeat(ramp[:, None], 3, axis=1))


def _warp(a: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    h, w = a.shape[1:3]
    warp = cv2.warpPerspective if matrix.shape == (3, 3) else cv2.warpAffine
    return per_frame(a, lambda s, d: warp(s, matrix, (w, h), dst=d, flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=0))


def perspective(a: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Map the quadrilateral with corners moved inwards by ``offsets`` (4 x 2, fractions of W, H) onto the
    whole frame (imgaug's PerspectiveTransform with keep_size=True); zero fill."""
    h, w = a.shape[1:3]
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    inward = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * offsets * np.float32([w, h])
    return _warp(a, cv2.getPerspectiveTransform((corners + inward).astype(np.float32), corners))


def rotate(a: np.ndarray, angle: float) -> np.ndarray:
    """Rotate about the centre by ``angle`` degrees, bilinear, zero fill (as imgaug's Rotate)."""
    h, w = a.shape[1:3]
    return _warp(a, cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0))


def _draw_motion(rng: np.random.Generator) -> dict[str, Any]:
    k = int(rng.choice([3, 5, 7]))
    return {"kernel": motion_kernel(k, float(rng.uniform(0, 360)), float(rng.uniform(-1, 1)))}


# name -> (draw(rng) -> keyword arguments, apply(clip, **kwargs)), in the original README's order
AUGMENTATIONS: dict[str, tuple[Callable[..., dict[str, Any]], Callable[..., np.ndarray]]] = {
    "gaussian_blur": (lambda r: {"sigma": float(r.choice([0.1, 0.2, 0.3]))}, gaussian_blur),
    "add": (lambda r: {"values": [int(v) for v in r.integers(-5, 16, size=3)]}, add),
    "gaussian_noise": (lambda r: {"seed": int(r.integers(2**63))}, gaussian_noise),
    "colour_enhance": (lambda r: {"factor": float(r.uniform(1.2, 1.6))}, colour_enhance),
    "motion_blur": (_draw_motion, motion_blur),
    "hue_saturation": (lambda r: {"hue": int(r.integers(-16, 17)), "saturation": int(r.integers(-16, 17))},
                       hue_saturation),
    "linear_contrast": (lambda r: {"alpha": float(r.uniform(0.85, 1.115))}, linear_contrast),
    "perspective": (lambda r: {"offsets": np.abs(r.normal(0, r.uniform(0.02, 0.05), size=(4, 2)))}, perspective),
    "rotate": (lambda r: {"angle": float(r.uniform(-10, 10))}, rotate),
}
ONE_OF = ("perspective", "rotate")


def draw_augment(rng: np.random.Generator, p_any: float = 0.8, p_each: float = 0.4) -> Ops:
    """The operations (with parameters) for one clip: with probability ``p_any`` the sequence runs, then
    each augmentation with ``p_each``; perspective and rotation share one slot (one of them)."""
    if rng.random() >= p_any:
        return []
    ops: Ops = []
    for name in AUGMENTATIONS:
        if name == ONE_OF[1]:
            continue
        if rng.random() < p_each:
            name = ONE_OF[int(rng.integers(2))] if name == ONE_OF[0] else name
            ops.append((name, AUGMENTATIONS[name][0](rng)))
    return ops


def apply_augment(a: np.ndarray, ops: Ops) -> np.ndarray:
    """Apply ``ops`` (from `draw_augment`) to every frame of the clip ``(T, H, W, 3)`` uint8."""
    for name, kwargs in ops:
        a = AUGMENTATIONS[name][1](a, **kwargs)
    return a
