"""Frame decoders: turn a list of JPEG blobs into a clip of frames ``(T, H, W, 3)`` uint8 in BGR order.

A decoder is anything with ``decode(blobs, reduce=1)``, a ``device`` and the ``reductions`` it supports
(`FrameDecoder`); `make_decoder(name)` builds one from `DECODERS`:

- ``'opencv'`` (`OpenCVDecoder`, the default and the original's ``cv2.imdecode``): numpy on the CPU; decodes at
  1/2, 1/4 or 1/8 scale with libjpeg's DCT scaling (``cv2.IMREAD_REDUCED_COLOR_k``), which is cheaper than a
  full decode followed by a resize.
- ``'torchvision'`` (`TorchvisionDecoder`): ``torchvision.io.decode_jpeg`` on the whole list, on ``device``
  (``'cpu'`` or ``'cuda'``, where nvJPEG decodes the batch); returns a tensor on that device.

`choose_reduce` picks the largest reduction that keeps the decoded frame at least as large as a transform needs,
read from the JPEG header alone (`jpeg_size`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is imported only by the torchvision decoder: the offline tools do not need it
    import torch

Frames = Union[np.ndarray, "torch.Tensor"]  # (T, H, W, 3) uint8, BGR
# ``--decode``: where the JPEG blobs of a training batch are decoded (`data.pipeline.device_batches`)
DECODE_CHOICES = ("cpu", "gpu")
REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}


class FrameReadError(Exception):
    """A clip could not be read: missing/corrupt database, missing frames or undecodable JPEG.

    ``position`` is the index of the offending blob in the list given to a decoder, when known.
    """

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


def decode_jpeg(blob: bytes, where: str = "", reduce: int = 1) -> np.ndarray:
    """Decode one JPEG blob to a BGR ``uint8`` array ``(H, W, 3)`` (OpenCV order, as the original), at 1/``reduce``
    scale (sides rounded up, as libjpeg does)."""
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), REDUCED_FLAGS[reduce])
    if img is None:
        raise FrameReadError(f"{where or 'blob'}: frame is not a decodable JPEG")
    return img


def _stack(frames: list[np.ndarray]) -> np.ndarray:
    try:
        return np.stack(frames)
    except ValueError as exc:
        raise FrameReadError(f"frames differ in size ({exc})") from exc


@runtime_checkable
class FrameDecoder(Protocol):
    """Decodes a list of JPEG blobs to frames ``(T, H, W, 3)`` uint8 BGR (numpy, or a tensor on ``device``)."""

    device: str
    reductions: tuple[int, ...]  # scale divisors ``decode`` accepts; (1,) when it cannot decode reduced

    def decode(self, blobs: Sequence[bytes], reduce: int = 1) -> Frames:
        """Frames of ``blobs`` at 1/``reduce`` scale; raises FrameReadError (with ``position``) on a bad blob."""
        ...


class OpenCVDecoder:
    """``cv2.imdecode`` per blob on the CPU -> numpy ``(T, H, W, 3)`` BGR; ``reduce`` 2/4/8 uses DCT scaling."""

    device = "cpu"
    reductions = (1, 2, 4, 8)

    def decode(self, blobs: Sequence[bytes], reduce: int = 1) -> np.ndarray:
        if reduce not in REDUCED_FLAGS:
            raise ValueError(f"reduce must be one of {sorted(REDUCED_FLAGS)}, got {reduce}")
        flag, out = REDUCED_FLAGS[reduce], []
        for j, blob in enumerate(blobs):
            img = cv2.imdecode(np.frombuffer(blob, np.uint8), flag)
            if img is None:  # the message is built only on failure: this loop is the loader's hot path
                raise FrameReadError(f"blob {j}: frame is not a decodable JPEG", position=j)
            out.append(img)
        return _stack(out)


class TorchvisionDecoder:
    """``torchvision.io.decode_jpeg`` on the whole list on ``device`` -> tensor ``(T, H, W, 3)`` BGR on ``device``.

    torchvision decodes to RGB; the channels are flipped so the frames match `OpenCVDecoder` (and the BGR
    order the released weights expect). Full-size decoding only (``reductions == (1,)``).
    """

    reductions = (1,)

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = str(device)

    def decode(self, blobs: Sequence[bytes], reduce: int = 1) -> torch.Tensor:
        import torch  # noqa: PLC0415  (the OpenCV path never loads torch)
        from torchvision.io import ImageReadMode  # noqa: PLC0415
        from torchvision.io import decode_jpeg as tv_decode_jpeg  # noqa: PLC0415

        if reduce != 1:
            raise ValueError(f"TorchvisionDecoder decodes at full size only, got reduce={reduce}")
        data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
        try:
            images = tv_decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError as exc:  # torchvision names no blob: find the first one that fails alone
            raise FrameReadError(f"blob {self._bad(data)}: frame is not a decodable JPEG ({exc})",
                                 position=self._bad(data)) from None
        try:
            clip = torch.stack(images)
        except RuntimeError as exc:
            raise FrameReadError(f"frames differ in size ({exc})") from exc
        return clip.permute(0, 2, 3, 1).flip(-1)

    def _bad(self, data: list[torch.Tensor]) -> int | None:
        from torchvision.io import ImageReadMode  # noqa: PLC0415  (as in decode)
        from torchvision.io import decode_jpeg as tv_decode_jpeg  # noqa: PLC0415

        for j, d in enumerate(data):
            try:
                tv_decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError:
                return j
        return None


DECODERS: dict[str, Callable[..., FrameDecoder]] = {"opencv": OpenCVDecoder, "torchvision": TorchvisionDecoder}


def make_decoder(name: str, **kwargs) -> FrameDecoder:
    """The decoder registered as ``name`` in `DECODERS` (keywords, e.g. ``device``, go to its constructor)."""
    try:
        return DECODERS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown frame decoder {name!r}; choose one of {sorted(DECODERS)}") from None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(blob: bytes) -> tuple[int, int] | None:
    """``(height, width)`` of a JPEG from its frame header (no decoding); None if the header is not found."""
    pos, n = 2, len(blob)
    if blob[:2] != b"\xff\xd8":
        return None
    while pos + 4 <= n:
        if blob[pos] != 0xFF:
            return None
        marker = blob[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(blob[pos + 2:pos + 4], "big")
        if marker in _SOF and pos + 9 <= n:
            return int.from_bytes(blob[pos + 5:pos + 7], "big"), int.from_bytes(blob[pos + 7:pos + 9], "big")
        pos += 2 + length
    return None


def choose_reduce(short_side: int, min_side: int | None, reductions: Sequence[int] = (1, 2, 4, 8)) -> int:
    """The largest ``k`` in ``reductions`` whose decoded shorter side ``floor(short_side / k)`` is still
    ``>= min_side``; 1 when ``min_side`` is unknown (None)."""
    if min_side is None or min_side < 1:
        return 1
    fits = [k for k in reductions if short_side // k >= min_side]
    return max(fits, default=1)
