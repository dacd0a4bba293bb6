"""Input normalisation the original networks were trained with (``network/config.py`` of the original).

The original used the MFNet convention ``(pixel - mean*255) * 0.0167`` for every network, i.e. the mean
below and ``std = 1 / (0.0167*255)``; the values are applied channel-wise to BGR frames (OpenCV order), which
is what released checkpoints expect.
"""
from __future__ import annotations

from typing import Any

MEAN: list[float] = [124.0 / 255, 117.0 / 255, 104.0 / 255]
STD: list[float] = [1.0 / (0.0167 * 255)] * 3


def get_config(name: str = "", **kwargs: Any) -> dict[str, list[float]]:
    """Mean/std for ``name`` (the same for every network, as in the original)."""
    return {"mean": list(MEAN), "std": list(STD)}
