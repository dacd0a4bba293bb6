"""Log-line callbacks with the original's exact speed/metric line format.

A train line reads (one line, shown wrapped; colour codes shown as ⟨⟩)::

    Epoch [0]   Batch [12]   Speed (r=⟨92⟩1.53e+5⟨0⟩ f=⟨93⟩9.84e+1⟨0⟩ b=⟨91⟩1.78e+1⟨0⟩) clip/sec
    loss-ce = 5.30000, top1 = 0.25000, top5 = 0.50000, batch_size = (  384,3, 4,200,200), lr = 1.00e-1

With ``--clip-grad-norm`` the train line ends with ``, grad_norm = <mean norm before clipping>``.

Speeds are clips per second of reading (data loading), forward and backward, formatted with ``'{:.2e}'`` of a
``Decimal`` (no zero-padded exponent: ``1.53e+5``) and coloured red/yellow/green by :data:`THRESHOLDS`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

RED, YELLOW, GREEN, RESET = "\033[91m", "\033[93m", "\033[92m", "\033[0m"

# clips/s: below the first value red, below the second yellow, else green. CUDA: the original's limits; CPU:
# limits ~10x lower, so a healthy CPU run is not red throughout (a 3D ResNet runs 1-200 clips/s on a CPU).
THRESHOLDS: dict[str, tuple[float, float]] = {"r": (100.0, 3000.0), "f": (50.0, 300.0), "b": (20.0, 200.0)}
DEVICE_THRESHOLDS: dict[str, dict[str, tuple[float, float]]] = {
    "cuda": THRESHOLDS, "cpu": {"r": (10.0, 300.0), "f": (2.0, 30.0), "b": (1.0, 20.0)}}
SPEED_LEGEND = ("speed lines: r/f/b = clips per second of reading (waiting for the loader), forward and "
                "backward; red < {r[0]:g}/{f[0]:g}/{b[0]:g} <= yellow < {r[1]:g}/{f[1]:g}/{b[1]:g} <= green "
                "on {device}")

log = logging.getLogger(__name__)


def sci(value: float) -> str:
    """``'{:.2e}'`` of a Decimal, as the original: ``153000 -> '1.53e+5'``, ``0.1 -> '1.00e-1'``."""
    return f"{Decimal(value):.2e}"


def colour(kind: str, clips_per_sec: float, thresholds: dict[str, tuple[float, float]] | None = None) -> str:
    """``clips_per_sec`` in scientific notation wrapped in the colour of its speed band for ``kind`` (r/f/b)."""
    low, high = (thresholds or THRESHOLDS)[kind]
    code = RED if clips_per_sec < low else YELLOW if clips_per_sec < high else GREEN
    return f"{code}{sci(clips_per_sec)}{RESET}"


class Callback:
    """Base class: an optional ``Epoch [e]   Batch [i]   `` header."""

    def __init__(self, with_header: bool = False) -> None:
        self.with_header = with_header

    def header(self, epoch: int | None = None, batch: int | None = None) -> str:
        out = ""
        if self.with_header:
            if epoch is not None:
                out += "Epoch {:s} ".format(f"[{epoch}]".ljust(5))
            if batch is not None:
                out += "Batch {:s} ".format(f"[{batch}]".ljust(6))
        return out


class SpeedMonitor(Callback):
    """``Speed (r=.. f=.. b=..) clip/sec`` from seconds-per-clip of reading, forward and backward."""

    def __init__(self, with_header: bool = False, device_type: str = "cuda") -> None:
        super().__init__(with_header)
        self.thresholds = DEVICE_THRESHOLDS.get(device_type, THRESHOLDS)

    def __call__(self, read_elapse: float | None = None, forward_elapse: float | None = None,
                 backward_elapse: float | None = None, epoch: int | None = None, batch: int | None = None,
                 **_: Any) -> str:
        out = self.header(epoch, batch)
        if read_elapse is None or forward_elapse is None:
            return out
        t = self.thresholds
        parts = [f"r={colour('r', 1.0 / max(read_elapse, 1e-12), t)}",
                 f"f={colour('f', 1.0 / max(forward_elapse, 1e-12), t)}"]
        if backward_elapse is not None:
            parts.append(f"b={colour('b', 1.0 / max(backward_elapse, 1e-12), t)}")
        return out + "Speed ({}) clip/sec ".format(" ".join(parts))


def format_value(name: str, value: Any) -> str:
    """``batch_size`` as ``(B:5d,C:1d,T:2d,H:3d,W:3d)``, ``lr`` as Decimal ``.2e``, everything else ``.5f``."""
    if name == "batch_size":
        b, c, t, h, w = value
        return f"({b:5d},{c:1d},{t:2d},{h:3d},{w:3d})"
    if name == "lr":
        return sci(value)
    return f"{value:.5f}"


class MetricPrinter(Callback):
    """``name = value`` pairs joined by ``, `` (the last followed by a space); ``None`` values are skipped."""

    def __call__(self, namevals: Sequence[tuple[str, Any]] | None = None, epoch: int | None = None,
                 batch: int | None = None, **_: Any) -> str:
        out = self.header(epoch, batch)
        if not namevals:
            return out
        last = len(namevals) - 1
        for i, (name, value) in enumerate(namevals):
            if value is None:
                continue
            out += f"{name} = {format_value(name, value)}"
            out += ", " if i != last else " "
        return out


class CallbackList(Callback):
    """Header + each callback's text followed by a space; logged at INFO unless ``silent``."""

    def __init__(self, *callbacks: Callback, with_header: bool = True) -> None:
        super().__init__(with_header)
        self.callbacks = list(callbacks)

    def __call__(self, epoch: int | None = None, batch: int | None = None, silent: bool = False,
                 prefix: str = "", **kwargs: Any) -> str:
        out = prefix + self.header(epoch, batch)
        for callback in self.callbacks:
            out += callback(**kwargs) + " "
        if not silent:
            log.info(out)
        return out


def default_callbacks(device_type: str = "cuda") -> CallbackList:
    """The original's ``CallbackList(SpeedMonitor(), MetricPrinter())``, coloured for ``device_type``."""
    return CallbackList(SpeedMonitor(device_type=device_type), MetricPrinter())


def speed_legend(device_type: str) -> str:
    """The one line that explains r/f/b and the colour bands (logged once per run)."""
    t = DEVICE_THRESHOLDS.get(device_type, THRESHOLDS)
    return SPEED_LEGEND.format(device=device_type.upper(), **t)
