"""Input normalisation the original networks were trained with (``network/config.py`` of the original).

The original used the MFNet convention ``(pixel - mean*255) * 0.0167`` for every network, i.e. the mean
below and ``std = 1 / (0.0167*255)``; the values are applied channel-wise to BGR frames (OpenCV order), which
is what released checkpoints expect. Networks built for public weights carry their publisher's convention
instead (:class:`InputSpec`, ``model.input_spec``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MEAN: list[float] = [124.0 / 255, 117.0 / 255, 104.0 / 255]
STD: list[float] = [1.0 / (0.0167 * 255)] * 3


def get_config(name: str = "", **kwargs: Any) -> dict[str, list[float]]:
    """The original's mean/std (BGR order), the same for each of its networks; ``name`` is ignored, as the original
    did. Networks of public weights carry their own convention (``model.input_spec``, :func:`input_spec_of`)."""
    return {"mean": list(MEAN), "std": list(STD)}


CHANNEL_ORDERS = ("BGR", "RGB")


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its frames: ``channel_order`` ('BGR' or 'RGB') and per-channel ``mean``/``std`` for
    pixels scaled to [0, 1], i.e. ``x = (pixel/255 - mean)/std`` in that channel order. Every model carries one
    as ``model.input_spec``; checkpoints store it (``to_dict``) and evaluation, prediction and export read it."""

    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"input_spec: channel_order must be one of {', '.join(CHANNEL_ORDERS)}, "
                             f"got '{self.channel_order}'")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3 or (name == "std" and min(values) <= 0):
                raise ValueError(f"input_spec: {name} needs three floats{' > 0' if name == 'std' else ''}, "
                                 f"got {getattr(self, name)}")
            object.__setattr__(self, name, values)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint: ``{'channel_order', 'mean': [3], 'std': [3]}``."""
        return {"channel_order": self.channel_order, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """The inverse of :meth:`to_dict` (a bad entry is a one-line ``ValueError``)."""
        try:
            return cls(str(data["channel_order"]), tuple(data["mean"]), tuple(data["std"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"input_spec: expected channel_order, mean and std, got {dict(data)}") from exc


# The original's convention (BGR, MFNet mean/std): every original network and checkpoint.
ORIGINAL_INPUT = InputSpec("BGR", tuple(MEAN), tuple(STD))
# torchvision's Kinetics-400 video models (also used by the IG65M and VMZ PyTorch releases): RGB.
TORCHVISION_INPUT = InputSpec("RGB", (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
# kenshohara/3D-ResNets-PyTorch (``get_mean_std(1, 'kinetics')``, frames read as RGB by PIL).
RESNETS3D_INPUT = InputSpec("RGB", (0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737))


def input_spec_of(model: Any) -> InputSpec:
    """``model.input_spec`` (unwrapping DDP/compile wrappers), else the original's convention."""
    while True:
        spec = getattr(model, "input_spec", None)
        if isinstance(spec, InputSpec):
            return spec
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None or inner is model:
            return ORIGINAL_INPUT
        model = inner
