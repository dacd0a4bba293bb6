"""Spatial transforms of a clip: crop/resize geometry per dataset policy, augmentations, normalisation.

``build_transform(policy, train, mean, std)`` returns a `VideoTransform`, called as
``transform(frames (T, H, W, 3) uint8 BGR, size (T, h, w)) -> (3, T, h, w) float32``, normalised per channel
as ``(x/255 - mean) / std`` in BGR order (as the original: released weights expect BGR, docs/differences.md#20),
or in RGB order with ``channel_order='RGB'`` (networks of public weights: their ``model.input_spec``).

Geometry policies (the original's; sizes in pixels of the resized frame):
- ``'large'`` (HACS, Kinetics, MiT): train: shorter side -> 384, centre crop 384, random crop ``crop_size``;
  eval: shorter side -> 294, centre crop 294, centre crop ``crop_size``.
- ``'small'`` (UCF-101, HMDB-51, Diving-48): train: shorter side -> 294, random crop ``crop_size``; eval:
  shorter side -> 294, centre crop ``crop_size`` (docs/differences.md#19).
- ``'none'`` (our addition, for the synthetic set whose classes are motions): the whole frame is resized to
  ``(h, w)``; no augmentation and no flip by default (a flip would turn 'moving left' into 'moving right').

``crop_size`` defaults to the requested ``(h, w)``; pass the nominal clip size to keep the field of view
when multigrid asks for smaller sizes (the original cropped at clip_size, then resized). Train clips are
augmented (`data.pipeline.video_augment`) and flipped (p=0.5) at crop resolution, then resized to ``(h, w)``.
Each crop is computed as one box in source pixels and read with a single antialiased bilinear resize
(original: imgaug resize, crop, then a cubic resize of each frame).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as F

from data.pipeline.rng import STREAMS
from data.pipeline.video_augment import SPATIAL, apply_augment, draw_augment
from data.pipeline.video_sampler import ProcessRNG
from network.config import CHANNEL_ORDERS


@dataclass(frozen=True)
class Geometry:
    """Shorter-side targets and optional centre crops in pixels; ``whole``: no crop, the whole frame is used."""

    train_short: int = 0
    train_centre: int | None = None
    eval_short: int = 0
    eval_centre: int | None = None
    whole: bool = False


POLICIES: dict[str, Geometry] = {
    "large": Geometry(384, 384, 294, 294),
    "small": Geometry(294, None, 294, None),
    "none": Geometry(whole=True),
}


def crop_box(height: int, width: int, crop: tuple[int, int], geometry: Geometry, train: bool,
             rng: np.random.Generator | None) -> tuple[int, int, int, int]:
    """``(top, left, box_h, box_w)`` in source pixels of the crop that, resized to ``crop``, equals resizing the
    frame (shorter side), centre cropping and random (train) or centre (eval) cropping ``crop``."""
    if geometry.whole:
        return 0, 0, height, width
    short, centre = ((geometry.train_short, geometry.train_centre) if train
                     else (geometry.eval_short, geometry.eval_centre))
    scale = short / min(height, width)
    # region allowed for the crop (after the optional centre crop), in source pixels
    reg_h = min(height, round(centre / scale)) if centre else height
    reg_w = min(width, round(centre / scale)) if centre else width
    reg_top, reg_left = (height - reg_h) // 2, (width - reg_w) // 2
    # a crop larger than the region is not padded (as the original): the final resize fixes the size
    box_h, box_w = min(reg_h, max(1, round(crop[0] / scale))), min(reg_w, max(1, round(crop[1] / scale)))
    if train and rng is not None:
        top = reg_top + int(rng.integers(reg_h - box_h + 1))
        left = reg_left + int(rng.integers(reg_w - box_w + 1))
    else:
        top, left = reg_top + (reg_h - box_h) // 2, reg_left + (reg_w - box_w) // 2
    return top, left, box_h, box_w


def normalise(x: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor,
              channel_order: str = "BGR") -> torch.Tensor:
    """``(T, 3, h, w)`` uint8 BGR -> contiguous ``(3, T, h, w)`` float32 ``(x/255 - mean)/std`` per channel, the
    channels in ``channel_order`` (the model's ``input_spec``: 'BGR' as decoded, or 'RGB')."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got '{channel_order}'")
    out = torch.empty((x.shape[1], x.shape[0], *x.shape[2:]), dtype=torch.float32, device=x.device)
    if channel_order == "RGB":
        x = x.flip(1)
    out.copy_(x.permute(1, 0, 2, 3))  # one pass: uint8 -> float32 and (T, 3) -> (3, T)
    mean_t, std_t = (torch.as_tensor(v, dtype=torch.float32, device=x.device) for v in (mean, std))
    return out.mul_((1 / (255 * std_t)).view(-1, 1, 1, 1)).sub_((mean_t / std_t).view(-1, 1, 1, 1))


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch ops single-threaded: per-clip tensors are small and clips are transformed in parallel by
    DataLoader workers (which use one thread already); in the main process, intra-op threads only add
    synchronisation (measured: a 6x3x48x48 ``.float()`` took 6 ms with 2 busy threads, 0.02 ms with 1)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


class VideoTransform:
    """Callable ``(frames (T, H, W, 3) uint8, size (T, h, w)) -> (3, T, h, w) float32``; see the module doc."""

    def __init__(self, policy: str, train: bool, mean: Sequence[float], std: Sequence[float], *,
                 crop_size: int | tuple[int, int] | None = None, augment: bool | None = None,
                 p_any: float = 0.8, p_each: float = 0.4, flip: bool | None = None, seed: int = 0,
                 channel_order: str = "BGR"):
        if policy not in POLICIES:
            raise ValueError(f"unknown augmentation policy {policy!r}; choose one of {sorted(POLICIES)}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (B, G, R), got {mean} and {std}")
        self.policy, self.geometry, self.train = policy, POLICIES[policy], bool(train)
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self._mean_std = torch.tensor(self.mean), torch.tensor(self.std)
        self.channel_order = channel_order  # of the output; frames come in BGR and augment in BGR
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        default = self.train and not self.geometry.whole
        self.augment = default if augment is None else bool(augment)
        self.flip = default if flip is None else bool(flip)
        self.p_any, self.p_each = p_any, p_each
        self.rng = ProcessRNG(seed, stream=STREAMS["transform"])

    def __repr__(self) -> str:
        return (f"VideoTransform(policy={self.policy!r}, train={self.train}, augment={self.augment}, "
                f"flip={self.flip}, crop_size={self.crop_size})")

    def min_input_side(self, size: Sequence[int]) -> int:
        """The shortest frame side (pixels) at which no resize of this transform to ``size`` ``(T, h, w)``
        enlarges the crop: a frame decoded at least this large (`data.store.frame_decoder.choose_reduce`) gives the
        full-size frame's clip up to the resize's own error. Conservative: with augmentation on, the crop is
        assumed to be worked at ``crop_size`` (spatial ops do); +1 pixel covers the rounding of the box."""
        out = (int(size[1]), int(size[2]))
        crop = tuple(self.crop_size) if self.crop_size else out
        need = crop if self.augment else out
        if self.geometry.whole:  # the whole frame is resized to ``need``: both sides must be at least that
            return max(need)
        short, centre = ((self.geometry.train_short, self.geometry.train_centre) if self.train
                         else (self.geometry.eval_short, self.geometry.eval_centre))
        # the box is min(crop, centre) / scale source pixels, scale = short / source short side
        side = max(-(-n * short // min(c, centre or c)) for n, c in zip(need, crop))
        return max(side + 1, max(need))

    def __call__(self, frames: np.ndarray, size: Sequence[int], rng: np.random.Generator | None = None) -> torch.Tensor:
        with one_thread():
            return self._transform(frames, size, self.rng.get() if rng is None else rng)

    def _transform(self, frames: np.ndarray, size: Sequence[int], rng: np.random.Generator) -> torch.Tensor:
        # frames may also be a uint8 tensor on any device (`data.pipeline.device_batches.DeviceBatches`)
        x = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected frames (T, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
        out_hw = (int(size[1]), int(size[2]))
        crop = tuple(self.crop_size) if self.crop_size else out_hw
        x = x.permute(0, 3, 1, 2)  # (T, 3, H, W), channels-last in memory
        top, left, bh, bw = crop_box(x.shape[2], x.shape[3], crop, self.geometry, self.train, rng)
        ops = draw_augment(rng, self.p_any, self.p_each) if self.augment else []
        flip = self.flip and rng.random() < 0.5
        # point-wise colour ops do not depend on the pixel scale: then go straight to the output size
        work_hw = crop if any(name in SPATIAL for name, _ in ops) else out_hw
        x = self._resized_crop(x, top, left, bh, bw, work_hw)
        if ops:
            augmented = apply_augment(x.permute(0, 2, 3, 1).cpu().numpy(), ops)  # OpenCV: on the CPU
            x = torch.from_numpy(augmented).to(x.device).permute(0, 3, 1, 2)
        if flip:
            x = F.horizontal_flip(x)
        if tuple(x.shape[-2:]) != out_hw:
            x = F.resize(x, list(out_hw), antialias=True)
        clip = normalise(x, *self._mean_std, channel_order=self.channel_order)
        if clip.shape[1] != int(size[0]):
            raise ValueError(f"the clip has {clip.shape[1]} frames but {size[0]} were requested")
        return clip

    @staticmethod
    def _resized_crop(x: torch.Tensor, top: int, left: int, bh: int, bw: int, out_hw: tuple[int, int]) -> torch.Tensor:
        return resized_crop(x, top, left, bh, bw, out_hw)


def resized_crop(x: torch.Tensor, top: int, left: int, bh: int, bw: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """The box ``(top, left, bh, bw)`` of ``(T, 3, H, W)`` uint8 frames, resized to ``out_hw`` (antialiased
    bilinear; no resize when the box already has that size)."""
    x = x[:, :, top:top + bh, left:left + bw]
    if (bh, bw) == tuple(out_hw):
        return x
    return F.resize(x.contiguous(memory_format=torch.channels_last), list(out_hw), antialias=True)


def view_crop_boxes(height: int, width: int, size: int, crops: int, short_side: int | None = None
                    ) -> list[tuple[int, int, int, int]]:
    """Multi-view testing (PySlowFast/MMAction2): the boxes ``(top, left, box_h, box_w)`` in source pixels of
    ``crops`` crops of ``size``² of the frame resized so that its shorter side is ``short_side`` (default
    ``size``), centred across the shorter side and evenly spread along the longer one (1: the centre, 3:
    left/centre/right, top/centre/bottom for portrait frames). Read each with :func:`resized_crop`; on a square
    frame resized to ``size`` every crop is the same box."""
    short = short_side or size
    if short < size:
        raise ValueError(f"--short-side {short_side} is smaller than the crop {size}")
    scale = short / min(height, width)
    box_h, box_w = min(height, max(1, round(size / scale))), min(width, max(1, round(size / scale)))
    landscape = height <= width
    room = width - box_w if landscape else height - box_h
    offsets = [room // 2] if crops == 1 else [round(i * room / (crops - 1)) for i in range(crops)]
    if landscape:
        return [((height - box_h) // 2, o, box_h, box_w) for o in offsets]
    return [(o, (width - box_w) // 2, box_h, box_w) for o in offsets]


def build_transform(policy: str, train: bool, mean: Sequence[float], std: Sequence[float], **kwargs) -> VideoTransform:
    """The transform of a dataset policy ('large', 'small', 'none') for training or evaluation.

    Keywords: ``crop_size`` (nominal clip size; default: the requested size), ``augment`` and ``flip``
    (default: ``train``, and off for 'none'), ``p_any``/``p_each`` (0.8/0.4 as the original README), ``seed``,
    ``channel_order`` of the output (the model's ``input_spec``; default 'BGR').
    """
    return VideoTransform(policy, train, mean, std, **kwargs)
