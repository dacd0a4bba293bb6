"""Training curves (loss, top-1, top-5, learning rate; train vs val) drawn from the per-run result CSVs.

The engine writes ``train_results_s<start:04d>.csv`` and ``val_results_s<start:04d>.csv`` (header
``Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds,NonFinite``), one pair per (re)started run, ``_r<n>`` for the
n-th run from the same start. A resumed run starts a new pair, so files are read in order of their start epoch
(then run number) and a later file overrides the epochs it repeats.
The figure has whole-number epoch ticks, accuracies in percent, a logarithmic loss axis when the losses span
orders of magnitude, and a title naming the network, the data set and the best validation top-1.
"""
from __future__ import annotations

import csv
import logging
import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, PercentFormatter

from data.store.atomic import atomic_path

logger = logging.getLogger(__name__)

COLUMNS = ("Epoch", "Top1", "Top5", "Loss", "LR")
_START = re.compile(r"_s(\d+)(?:_r(\d+))?\.csv$")  # <split>_results_s<start>[_r<n>].csv (the n-th run from start)
# (column, panel title, y label); the CSVs hold Top1/Top5 as fractions in [0, 1] (as the original's), drawn in %.
PANELS = (("Loss", "Loss", "cross-entropy"), ("Top1", "Top-1 accuracy", "accuracy"),
          ("Top5", "Top-5 accuracy", "accuracy"), ("LR", "Learning rate", "lr"))
PERCENT = ("Top1", "Top5")
_FOLDER = re.compile(r"^(?P<network>.+)_gates_(?P<gates>True|False)$")
# A loss axis turns logarithmic when its largest value is this many times its smallest or its median (a spike).
LOG_RANGE, LOG_SPIKE = 50.0, 10.0

Curve = dict[int, dict[str, float]]


def _start_epoch(path: Path) -> tuple[int, int]:
    """``(start epoch, run number)`` of a result CSV's name, the order in which the runs wrote them."""
    match = _START.search(path.name)
    return (int(match.group(1)), int(match.group(2) or 1)) if match else (-1, 0)


def _parse(value: str | None) -> float | None:
    if value is None or value.strip() == "":
        return None
    return float(value)


def read_results(results_dir: str | Path, split: str) -> Curve:
    """``{epoch: {column: value}}`` merged over every ``<split>_results_s*.csv`` in ``results_dir``.

    Files are read by increasing start epoch; later files override the epochs they repeat (resumed runs).
    Rows missing the epoch (a run killed while writing) are skipped with a warning naming ``file:line``; a
    value that is not a number raises ``ValueError`` naming ``file:line``.
    """
    curve: Curve = {}
    for path in sorted(Path(results_dir).glob(f"{split}_results_s*.csv"), key=lambda p: (*_start_epoch(p), p.name)):
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("Epoch",) if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: no 'Epoch' column in the header {reader.fieldnames}; expected "
                                 f"{','.join(COLUMNS)},...")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                try:
                    epoch = _parse(row.get("Epoch"))
                    values = {c: _parse(row.get(c)) for c in COLUMNS[1:]}
                except ValueError as exc:
                    raise ValueError(f"{where}: not a number ({exc}); fix or delete the row") from None
                if epoch is None:
                    logger.warning("%s: incomplete row skipped", where)
                    continue
                curve[int(epoch)] = {k: v for k, v in values.items() if v is not None}
    return curve


def _series(curve: Curve, column: str) -> tuple[list[int], list[float]]:
    epochs = [e for e in sorted(curve) if column in curve[e]]
    return epochs, [curve[e][column] for e in epochs]


@dataclass(frozen=True)
class RunInfo:
    """What the plot title names: the network, the data set and the gates flag (None when unknown)."""

    network: str
    dataset: str | None = None
    gates: bool | None = None

    @classmethod
    def from_folder(cls, results_dir: str | Path) -> RunInfo:
        """From the engine's layout ``results/<DATASET>/<network>_gates_<bool>``; else the folder name."""
        folder = Path(results_dir).resolve()
        match = _FOLDER.match(folder.name)
        if not match:
            return cls(folder.name)
        return cls(match["network"], folder.parent.name or None, match["gates"] == "True")

    @classmethod
    def from_mapping(cls, info: Mapping[str, object], fallback: RunInfo) -> RunInfo:
        """``{'network', 'dataset', 'gates'}`` (any subset; missing keys come from ``fallback``)."""
        gates = info.get("gates", fallback.gates)
        return cls(str(info.get("network") or fallback.network), str(info.get("dataset") or fallback.dataset or "")
                   or None, None if gates is None else bool(gates))


def plot_title(info: RunInfo, val: Curve) -> str:
    """``network (gates G) on DATASET: best val top-1 xx.xx% (epoch e)``; parts that are unknown are left out."""
    title = info.network + ("" if info.gates is None else f" (gates {info.gates})")
    if info.dataset:
        title += f" on {info.dataset}"
    epochs, top1 = _series(val, "Top1")
    finite = [(v, e) for e, v in zip(epochs, top1) if math.isfinite(v)]
    if finite:
        best, epoch = max(finite, key=lambda p: (p[0], -p[1]))
        title += f": best val top-1 {100 * best:.2f}% (epoch {epoch})"
    return title


def wants_log_scale(values: list[float]) -> bool:
    """True when positive ``values`` span more than ``LOG_RANGE``× or hold a spike ``LOG_SPIKE``× the median."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2 or min(finite) <= 0:
        return False
    top = max(finite)
    return top > LOG_RANGE * min(finite) or top > LOG_SPIKE * statistics.median(finite)


def epoch_axis(ax: Axes, epochs: list[int]) -> None:
    """Whole-number epoch ticks with half an epoch of margin (one epoch gets one tick, not 0.945…1.050)."""
    if not epochs:
        return
    first, last = min(epochs), max(epochs)
    pad = max(0.5, 0.03 * (last - first))
    ax.set_xlim(first - pad, last + pad)
    if last - first < 10:
        ax.xaxis.set_major_locator(FixedLocator(list(range(first, last + 1))))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_panel(ax: Axes, column: str, title: str, ylabel: str, train: Curve, val: Curve) -> None:
    scale = 100.0 if column in PERCENT else 1.0
    drawn: list[float] = []
    dropped = 0
    for name, curve, style in (("train", train, "-o"), ("val", val, "--s")):
        if column == "LR" and name == "val" and train:
            continue  # the val rows repeat the epoch's training lr
        epochs, values = _series(curve, column)
        kept = [(e, v * scale) for e, v in zip(epochs, values) if math.isfinite(v)]
        dropped += len(epochs) - len(kept)
        if kept:
            ax.plot([e for e, _ in kept], [v for _, v in kept], style, markersize=3, label=name)
            drawn += [v for _, v in kept]
    if column == "LR" and drawn and min(drawn) > 0:
        ax.set_yscale("log")
    if column == "Loss" and wants_log_scale(drawn):
        ax.set_yscale("log")
        title += " (log scale)"
    if column in PERCENT:
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    if dropped:
        ax.text(0.01, 0.01, f"{dropped} non-finite value(s) not drawn", transform=ax.transAxes, fontsize=8,
                color="tab:red", va="bottom")
    epoch_axis(ax, sorted(set(train) | set(val)))
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def curves_figure(train: Curve, val: Curve, info: RunInfo) -> Figure:
    """The 2 × 2 figure :func:`plot_results` saves: loss, top-1, top-5 and lr against the epoch."""
    fig = Figure(figsize=(11, 7.5), tight_layout=True)
    FigureCanvasAgg(fig)
    for i, panel in enumerate(PANELS):
        _draw_panel(fig.add_subplot(2, 2, i + 1), *panel, train, val)
    fig.suptitle(plot_title(info, val))
    return fig


def plot_results(results_dir: str | Path, out: str | Path | None = None,
                 title_info: RunInfo | Mapping[str, object] | None = None) -> Path:
    """Draw loss / top-1 / top-5 / lr (train vs val) from ``results_dir``'s CSVs into a PNG; returns its path.

    ``out`` defaults to ``<results_dir>/curves.png``. Val files are optional. The title names the network,
    data set and gates of ``title_info`` (a :class:`RunInfo` or a mapping with those keys), falling back to the
    folder names ``<DATASET>/<network>_gates_<bool>``, and the best val top-1. Accuracies are drawn in percent;
    the loss axis is logarithmic when :func:`wants_log_scale`. Raises ``FileNotFoundError`` when there is no
    ``train_results_s*.csv`` and no ``val_results_s*.csv`` at all.
    """
    results_dir = Path(results_dir)
    train, val = read_results(results_dir, "train"), read_results(results_dir, "val")
    if not train and not val:
        raise FileNotFoundError(f"{results_dir}: no rows in train_results_s*.csv / val_results_s*.csv; "
                                "point to a results folder written by training")
    info = RunInfo.from_folder(results_dir)
    if isinstance(title_info, RunInfo):
        info = title_info
    elif title_info is not None:
        info = RunInfo.from_mapping(title_info, info)
    out = Path(out) if out is not None else results_dir / "curves.png"
    fig = curves_figure(train, val, info)
    with atomic_path(out, fsync=False) as tmp:  # the engine redraws per epoch: never half a PNG
        fig.savefig(tmp, dpi=100, format="png")
    return out
