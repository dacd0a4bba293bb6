"""Confusion-matrix figures that stay readable from 3 to 400+ classes.

Up to ``FULL_MAX`` classes the figure is the whole matrix with class names, each cell coloured by the fraction
of its true class and labelled with its count. Above that a full matrix cannot be read, so the figure (a fixed
2000 × 1200 px) shows the sub-matrix of the most confused classes with names, a thumbnail of the whole matrix,
the per-class accuracies sorted, and lists of the top confusions (``true → predicted: rate (count)``) and of
the weakest classes. Rows are true classes; every rate is a fraction of the true class's videos.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, PowerNorm
from matplotlib.figure import Figure

from data.store.atomic import atomic_path

FULL_MAX = 30  # classes drawn as the full matrix with names
SUB_CLASSES = 24  # classes in the sub-matrix of a many-class figure
TOP_CONFUSIONS = 30  # lines in the list of top confusions
WEAKEST = 12  # lines in the list of weakest classes
THUMB_BINS = 200  # the thumbnail of the whole matrix has at most this many rows and columns
NAME_CHARS = 26  # longer class names are cut with an ellipsis
CMAP = "Blues"
ROW_LABEL = "true class"
COL_LABEL = "predicted class"


class Confusion(NamedTuple):
    """One off-diagonal cell: videos of class ``true`` predicted as ``pred``; ``rate`` = count / row total."""

    true: int
    pred: int
    count: int
    rate: float


def normalise_rows(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows without videos stay 0)."""
    rows = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, rows, out=np.zeros(confusion.shape, dtype=np.float64), where=rows > 0)


def top_confusions(confusion: np.ndarray, k: int) -> list[Confusion]:
    """The ``k`` largest off-diagonal cells, by count, then rate, then (true, pred) index."""
    rates = normalise_rows(confusion)
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    true, pred = np.nonzero(off)
    order = np.lexsort((pred, true, -rates[true, pred], -off[true, pred]))[:k]
    return [Confusion(int(true[i]), int(pred[i]), int(off[true[i], pred[i]]), float(rates[true[i], pred[i]]))
            for i in order]


def most_confused_classes(confusion: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` classes taken from the largest confusions in order, so that confused pairs sit together."""
    chosen: list[int] = []
    for c in top_confusions(confusion, confusion.shape[0] ** 2):
        for index in (c.true, c.pred):
            if index not in chosen and len(chosen) < n:
                chosen.append(index)
        if len(chosen) >= n:
            break
    return chosen


def class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Per-class top-1 (diagonal / row sum); NaN for classes without videos."""
    rows = confusion.sum(axis=1).astype(np.float64)
    return np.divide(np.diag(confusion), rows, out=np.full(rows.shape, np.nan), where=rows > 0)


def block_max(matrix: np.ndarray, bins: int) -> tuple[np.ndarray, int]:
    """``matrix`` shrunk to at most ``bins`` × ``bins`` cells, each the max of a b × b block; returns it and b.

    A max (not a mean) keeps an isolated confusion visible in a thumbnail of 400+ classes.
    """
    k = matrix.shape[0]
    b = -(-k // bins)
    if b == 1:
        return matrix, 1
    padded = np.zeros((-(-k // b) * b,) * 2, dtype=matrix.dtype)
    padded[:k, :k] = matrix
    n = padded.shape[0] // b
    return padded.reshape(n, b, n, b).max(axis=(1, 3)), b


def short_name(name: str) -> str:
    """``name`` cut to ``NAME_CHARS`` characters with an ellipsis."""
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 1] + "…"


def _matrix(ax: Axes, confusion: np.ndarray, norm: np.ndarray, classes: Sequence[int], names: Sequence[str],
            colours: Normalize, fontsize: float) -> object:
    """Draw the rows/columns ``classes`` of ``norm`` with names (true-class labels carry their accuracy)."""
    sub = norm[np.ix_(classes, classes)]
    image = ax.imshow(sub, cmap=CMAP, norm=colours, interpolation="nearest")
    accuracy = class_accuracy(confusion)
    labels = [short_name(names[c]) for c in classes]
    ax.set_xticks(range(len(classes)), labels=labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(classes)), labels=[f"{name} {100 * accuracy[c]:3.0f}%" if np.isfinite(accuracy[c])
                                               else name for name, c in zip(labels, classes)], fontsize=fontsize)
    for r, true in enumerate(classes):
        for col, pred in enumerate(classes):
            if confusion[true, pred]:
                light = colours(norm[true, pred]) > 0.55
                ax.text(col, r, str(confusion[true, pred]), ha="center", va="center", fontsize=fontsize - 1,
                        color="white" if light else "black")
    ax.set_xlabel(COL_LABEL)
    ax.set_ylabel(f"{ROW_LABEL} (its top-1)")
    return image


def _full_figure(confusion: np.ndarray, names: Sequence[str], title: str) -> Figure:
    k = confusion.shape[0]
    side = min(13.0, 4.0 + 0.3 * k)
    fig = Figure(figsize=(side + 2.5, side), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    image = _matrix(ax, confusion, normalise_rows(confusion), range(k), names, Normalize(0.0, 1.0),
                    fontsize=9 if k <= 15 else 8)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class (cells: video counts)")
    ax.set_title(title or "confusion matrix")
    return fig


def _summary_text(confusion: np.ndarray, names: Sequence[str]) -> str:
    lines = [f"Top {TOP_CONFUSIONS} confusions", "true → predicted: rate (count)", ""]
    top = top_confusions(confusion, TOP_CONFUSIONS)
    lines += [f"{short_name(names[c.true])} → {short_name(names[c.pred])}: {100 * c.rate:.0f}% ({c.count})"
              for c in top] or ["none: every video is on the diagonal"]
    accuracy = class_accuracy(confusion)
    rows = confusion.sum(axis=1)
    weakest = [c for c in np.argsort(accuracy, kind="stable") if np.isfinite(accuracy[c])][:WEAKEST]
    lines += ["", f"Weakest {len(weakest)} classes: top-1 (correct/videos)", ""]
    lines += [f"{short_name(names[c])}: {100 * accuracy[c]:.0f}% ({confusion[c, c]}/{rows[c]})" for c in weakest]
    return "\n".join(lines)


def _summary_figure(confusion: np.ndarray, names: Sequence[str], title: str) -> Figure:
    k = confusion.shape[0]
    norm = normalise_rows(confusion)
    colours = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)  # square-root scale: 5% confusions stay visible
    fig = Figure(figsize=(20, 12), layout="constrained")
    grid = fig.add_gridspec(2, 3, width_ratios=[1.3, 0.75, 0.95], height_ratios=[1, 1])
    ax = fig.add_subplot(grid[:, 0])
    classes = most_confused_classes(confusion, SUB_CLASSES)
    if classes:
        image = _matrix(ax, confusion, norm, classes, names, colours, fontsize=8)
        ax.set_title(f"The {len(classes)} most confused classes (of {k}); cells: video counts")
    else:
        image = ax.imshow(norm, cmap=CMAP, norm=colours)
        ax.set_title(f"no confusions among the {k} classes")
    fig.colorbar(image, ax=ax, shrink=0.6, label="fraction of the true class (square-root scale)")

    over = fig.add_subplot(grid[0, 1])
    thumb, b = block_max(norm, THUMB_BINS)
    over.imshow(thumb, cmap=CMAP, norm=colours, interpolation="nearest", extent=(-0.5, thumb.shape[0] * b - 0.5,
                                                                                thumb.shape[0] * b - 0.5, -0.5))
    over.set_title(f"All {k} classes (class index)")
    over.set_xlabel(COL_LABEL + (f" (a cell: the max of {b}×{b})" if b > 1 else ""))
    over.set_ylabel(ROW_LABEL)

    acc = fig.add_subplot(grid[1, 1])
    accuracy = class_accuracy(confusion)
    sorted_acc = np.sort(accuracy[np.isfinite(accuracy)])
    acc.bar(np.arange(len(sorted_acc)), 100 * sorted_acc, width=1.0, color="tab:blue")
    mean = 100 * float(sorted_acc.mean()) if len(sorted_acc) else float("nan")
    acc.axhline(mean, color="tab:red", lw=1, ls="--", label=f"mean per-class top-1 {mean:.1f}%")
    acc.set_xlim(-0.5, max(len(sorted_acc), 1) - 0.5)
    acc.set_ylim(0, 100)
    acc.set_title("Per-class top-1, sorted")
    acc.set_xlabel("classes, weakest first")
    acc.set_ylabel("top-1 (%)")
    acc.legend(loc="lower right")
    acc.grid(True, axis="y", alpha=0.3)

    text = fig.add_subplot(grid[:, 2])
    text.axis("off")
    text.text(0.0, 1.0, _summary_text(confusion, names), va="top", ha="left", fontsize=10, family="monospace",
              transform=text.transAxes)
    fig.suptitle(title or "confusion summary", fontsize=14)
    return fig


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """The figure :func:`plot_confusion` saves (full matrix up to ``FULL_MAX`` classes, else the summary)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    k = confusion.shape[0]
    if confusion.shape != (k, k) or len(class_names) < k:
        raise ValueError(f"confusion matrix of shape {confusion.shape} needs a square matrix and {k} class names "
                         f"(got {len(class_names)})")
    names = [str(n) for n in class_names[:k]]
    fig = (_full_figure if k <= FULL_MAX else _summary_figure)(confusion, names, title)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], out: str | Path, title: str = "") -> Path:
    """Draw ``confusion`` (K × K counts, rows: true class) into the PNG ``out``: the full matrix with names up
    to ``FULL_MAX`` classes, else the summary figure of the module doc (2000 × 1200 px). Returns ``out``."""
    fig = confusion_figure(confusion, class_names, title)
    out = Path(out)
    with atomic_path(out, fsync=False) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return out
