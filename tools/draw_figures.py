"""Draw the docs' figures into ``figures/``: sketches of the SR block and of MTConv, and the demo's plots.

    python tools/draw_figures.py                       # figures/sr_block.png, figures/mtconv.png
    python tools/draw_figures.py --demo results/SYNTHETIC/srtg_r3d_18_gates_False \\
        --eval results/SYNTHETIC/srtg_r3d_18_gates_False/eval_srtg_r3d_18_ep-0009_val_1x1

``--demo`` redraws that run's curves as ``figures/demo_curves.png``; ``--eval`` redraws an ``evaluate.py``
output folder's confusion matrix (from its ``results.json``) as ``figures/demo_confusion.png``. The sketches
follow ``network/srtg.py`` (Squeeze_and_Recursion) and ``network/mtconv.py`` / ``network/mtnet.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from data.store.atomic import atomic_path
from train.plots.confusion import plot_confusion
from train.plots.curves import plot_results

# fill colours by role: tensors, operations, recurrent cells, the gate, sums/products
COLOURS = {"tensor": "#f2f2f2", "op": "#dbe9f6", "rnn": "#fde3c8", "gate": "#e3f1dc", "node": "#ffffff"}
DPI = 130


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, kind: str = "op", dashed: bool = False,
         fontsize: float = 10) -> tuple[float, float, float, float]:
    """A rounded box centred at (x, y) with ``text``; returns its (left, right, bottom, top)."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.005,rounding_size=0.012",
                                fc=COLOURS[kind], ec="#333333", lw=1.2, ls="--" if dashed else "-"))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x - w / 2, x + w / 2, y - h / 2, y + h / 2


NODE_PT = 24  # diameter of a ×/+ node in points (a marker, so it stays round in any aspect)


def _node(ax: Axes, x: float, y: float, symbol: str) -> tuple[float, float]:
    """A small circle with ``symbol`` (× or +): an element-wise product or sum; returns its radius (dx, dy) in
    axes coordinates, so arrows can end on its rim."""
    ax.plot([x], [y], "o", ms=NODE_PT, mfc=COLOURS["node"], mec="#333333", mew=1.2, zorder=3)
    ax.text(x, y, symbol, ha="center", va="center", fontsize=14, fontweight="bold", zorder=4)
    fig = ax.get_figure()
    w, h = fig.get_size_inches() * ax.get_position().size
    return NODE_PT / 144 / w, NODE_PT / 144 / h


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], text: str = "", *, dashed: bool = False,
           rad: float = 0.0, where: tuple[float, float] = (0.0, 0.025), fontsize: float = 9) -> None:
    """An arrow from ``start`` to ``end`` with ``text`` at its middle (shifted by ``where``)."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", lw=1.3, color="#333333",
                                                          ls="--" if dashed else "-",
                                                          connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0))
    if text:
        ax.text((start[0] + end[0]) / 2 + where[0], (start[1] + end[1]) / 2 + where[1], text, ha="center",
                va="bottom", fontsize=fontsize, color="#222222")


def _polyline(ax: Axes, points: list[tuple[float, float]], dashed: bool = False) -> None:
    """Straight segments through ``points``, with an arrow head on the last one."""
    for a, b in zip(points[:-2], points[1:-1]):
        ax.plot([a[0], b[0]], [a[1], b[1]], color="#333333", lw=1.3, ls="--" if dashed else "-")
    _arrow(ax, points[-2], points[-1], dashed=dashed)


def _canvas(width: float, height: float, title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.92))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fig.suptitle(title, fontsize=13, y=0.97)
    return fig, ax


def draw_sr_block() -> Figure:
    """The Squeeze-and-Recursion block of SRTG with its optional temporal cycle-consistency gate."""
    fig, ax = _canvas(13, 5, "Squeeze-and-Recursion (SR) block of SRTG, with the optional temporal gate (gates=True)")
    y = 0.55
    _box(ax, 0.06, y, 0.09, 0.13, "x\n(B, C, T, H, W)", "tensor")
    _box(ax, 0.22, y, 0.13, 0.16, "squeeze\nmean over H, W\nper frame")
    _box(ax, 0.44, y, 0.15, 0.2, "2-layer LSTM\nover the T frames\n(sequence-first,\nzero initial state)", "rnn")
    dx, dy = _node(ax, 0.63, y, "×")
    _box(ax, 0.79, y, 0.12, 0.16, "keep x·r where\nthe gate passes,\nelse x\n(torch.where)", "gate", dashed=True)
    _box(ax, 0.94, y, 0.08, 0.13, "out\n(B, C, T, H, W)", "tensor")
    _arrow(ax, (0.105, y), (0.155, y))
    _arrow(ax, (0.285, y), (0.365, y), "s (B, C, T)")
    _arrow(ax, (0.515, y), (0.63 - dx, y), "r (B, C, T)")
    _arrow(ax, (0.63 + dx, y), (0.73, y), "x·r")
    _arrow(ax, (0.85, y), (0.90, y))
    ax.text(0.63, y - dy - 0.01, "r broadcast\nover H, W", ha="center", va="top", fontsize=8)
    # x reaches the product, and (gates=True) the selector
    _polyline(ax, [(0.06, y + 0.065), (0.06, 0.88), (0.63, 0.88), (0.63, y + dy)])
    _polyline(ax, [(0.63, 0.88), (0.79, 0.88), (0.79, y + 0.08)], dashed=True)
    ax.text(0.35, 0.895, "x", ha="center", va="bottom", fontsize=10)
    ax.text(0.71, 0.895, "x (gate closed)", ha="center", va="bottom", fontsize=9)
    # the gate: cycle consistency between the pooled features s and the recurrent features r
    gy = 0.17
    _box(ax, 0.55, gy, 0.36, 0.2, "temporal cycle-consistency gate (only with gates=True)\n"
         "soft nearest neighbour of each frame of s among r and back,\nand of r among s and back; "
         "a sample passes when\nevery frame cycles back to itself", "gate", dashed=True, fontsize=9)
    _polyline(ax, [(0.30, y), (0.30, gy), (0.37, gy)], dashed=True)
    _polyline(ax, [(0.56, y), (0.56, gy + 0.10)], dashed=True)
    _polyline(ax, [(0.73, gy), (0.79, gy), (0.79, y - 0.08)], dashed=True)
    ax.text(0.80, 0.33, "pass mask\n(B,) per sample", ha="left", va="center", fontsize=9)
    ax.text(0.01, 0.02, "No sigmoid: r is the LSTM's hidden state in (-1, 1), as in the original. With gates=False "
            "(the default) the block returns x·r.", fontsize=9, ha="left", va="bottom", color="#444444")
    return fig


def draw_mtconv() -> Figure:
    """MTConv's short and long streams with the lateral connection, inside an MTBlock's recurrent alignment."""
    fig, ax = _canvas(15, 6.5, "MTConv: a short and a long stream with a lateral connection; an MTBlock adds "
                      "recurrent alignment")
    ys, yl, ly = 0.8, 0.2, 0.5
    ax.add_patch(FancyBboxPatch((0.125, 0.06), 0.545, 0.86, boxstyle="round,pad=0,rounding_size=0.015", fc="none",
                                ec="#777777", lw=1.0, ls=":"))
    ax.text(0.135, 0.9, "MTConv", fontsize=11, fontweight="bold", va="top")
    ax.text(0.66, 0.9, "an MTBlock chains four: conv1_1, conv1_2, conv2, conv3", fontsize=8.5, va="top", ha="right")
    _box(ax, 0.06, ys, 0.1, 0.15, "short stream\n7/8 of the channels\nT, H, W", "tensor", fontsize=9)
    _box(ax, 0.06, yl, 0.1, 0.15, "long stream\n1/8 of the channels\nT/2, H/2, W/2", "tensor", fontsize=9)
    _box(ax, 0.22, ys, 0.1, 0.11, "conv_short\nk×k×k, stride")
    _box(ax, 0.22, yl, 0.1, 0.11, "conv_long\nk×k×k, stride")
    _box(ax, 0.58, ys, 0.1, 0.11, "norm_short\nBN (GN if _g8)")
    _box(ax, 0.42, yl, 0.1, 0.11, "norm_long\nBN (GN if _g8)")
    dx, dy = _node(ax, 0.58, yl, "+")
    for y in (ys, yl):
        _arrow(ax, (0.11, y), (0.17, y))
    _arrow(ax, (0.27, ys), (0.53, ys))
    _arrow(ax, (0.27, yl), (0.37, yl))
    _arrow(ax, (0.47, yl), (0.58 - dx, yl))
    # lateral: short conv output (before its norm) -> long stream, through the same norm_long module
    _box(ax, 0.30, ly, 0.08, 0.12, "avg pool\n(1, 2, 2)", fontsize=9)
    _box(ax, 0.41, ly, 0.11, 0.15, "temporal_cossim_pool\nkeep the T/2 most\nself-similar frame\n"
         "triplet centres", "gate", fontsize=8)
    _box(ax, 0.525, ly, 0.09, 0.14, "resize to long\n(trilinear),\nconv_short2long\n1×1×1", fontsize=8)
    _box(ax, 0.625, ly, 0.07, 0.14, "norm_long\n(the same\nmodule)", fontsize=8)
    _polyline(ax, [(0.30, ys), (0.30, ly + 0.06)])
    _arrow(ax, (0.34, ly), (0.355, ly))
    _arrow(ax, (0.465, ly), (0.48, ly))
    _arrow(ax, (0.57, ly), (0.59, ly))
    _polyline(ax, [(0.625, ly - 0.07), (0.625, yl + 0.12), (0.58, yl + 0.12), (0.58, yl + dy)])
    ax.text(0.31, 0.67, "lateral (short → long): taken before norm_short", fontsize=9, ha="left")
    # MTBlock part: recurrent alignment per stream, identity, ReLU
    for y, name, sign in ((ys, "sr_short", 1), (yl, "sr_long", -1)):
        _box(ax, 0.78, y, 0.12, 0.15, f"{name}\n2-layer GRU over T\nx·r per frame,\nper channel", "rnn", fontsize=9)
        _arrow(ax, (0.63 if y == ys else 0.58 + dx, y), (0.72, y), "after conv3")
        dx2, dy2 = _node(ax, 0.885, y, "+")
        _arrow(ax, (0.84, y), (0.885 - dx2, y))
        _arrow(ax, (0.885, y + sign * 0.1), (0.885, y + sign * dy2))
        ax.text(0.89, y + sign * 0.11, "identity of the stream", ha="center", va="bottom" if sign > 0 else "top",
                fontsize=8.5)
        _box(ax, 0.955, y, 0.07, 0.1, "ReLU\n→ next\nblock", "tensor", fontsize=9)
        _arrow(ax, (0.885 + dx2, y), (0.92, y))
    ax.text(0.78, 0.5, "recurrent alignment\n(in the MTBlock,\nonce per block)", ha="center", va="center",
            fontsize=9)
    footnote = ("MTNet: stem → max pool → temporal_cossim_pool → channel split (7/8 short, 1/8 long; the long "
                "part average-pooled (1, 2, 2) and frame-selected again) → 4 stages of MTBlocks\n→ global average "
                "pool of each stream → concatenate → fc.  A downsampling MTConv (the identity path of a block's "
                "first stride) has no lateral.")
    ax.text(0.01, 0.005, footnote, fontsize=8.5, color="#444444", va="bottom")
    return fig


def save(fig: Figure, out: Path) -> Path:
    """Write ``fig`` as a PNG (atomically)."""
    with atomic_path(out, fsync=False) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return out


def draw_demo_confusion(eval_dir: Path, out: Path) -> Path:
    """Redraw an ``evaluate.py`` output folder's confusion matrix (``results.json``) into ``out``."""
    path = eval_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; pass the folder evaluate.py printed ('written to ...')")
    result = json.loads(path.read_text())
    if "confusion" not in result or "classes" not in result:
        raise ValueError(f"{path}: no 'confusion'/'classes' keys; re-run evaluate.py to write them")
    title = f"{result.get('network', '')} on {result.get('dataset', '')}: video top-1 " \
            f"{100 * float(result.get('video_top1', float('nan'))):.2f}%"
    return plot_confusion(np.asarray(result["confusion"]), result["classes"], out, title=title)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints each PNG written."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "figures",
                   help="folder for the PNGs (default: the repository's figures/)")
    p.add_argument("--demo", type=Path, default=None, help="results folder of the demo run: draws demo_curves.png")
    p.add_argument("--eval", type=Path, default=None, help="evaluate.py output folder: draws demo_confusion.png")
    args = p.parse_args(argv)
    try:
        written = [save(draw_sr_block(), args.out / "sr_block.png"), save(draw_mtconv(), args.out / "mtconv.png")]
        if args.demo is not None:
            written.append(plot_results(args.demo, args.out / "demo_curves.png"))
        if args.eval is not None:
            written.append(draw_demo_confusion(args.eval, args.out / "demo_confusion.png"))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
