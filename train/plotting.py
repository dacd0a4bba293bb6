"""Training curves (loss, top-1, top-5, learning rate; train vs val) drawn from the per-run result CSVs.

The engine writes ``train_results_s<start:04d>.csv`` and ``val_results_s<start:04d>.csv`` (header
``Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds``), one pair per (re)started run. A resumed run starts a new
pair, so files are read in order of their start epoch and a later file overrides the epochs it repeats.
"""
from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from data.atomic import atomic_path

logger = logging.getLogger(__name__)

COLUMNS = ("Epoch", "Top1", "Top5", "Loss", "LR")
_START = re.compile(r"_s(\d+)\.csv$")
# (column, panel title, y label); Top1/Top5 are fractions in [0, 1] like the original's CSVs.
PANELS = (("Loss", "Loss", "cross-entropy"), ("Top1", "Top-1 accuracy", "fraction"),
          ("Top5", "Top-5 accuracy", "fraction"), ("LR", "Learning rate", "lr"))

Curve = dict[int, dict[str, float]]


def _start_epoch(path: Path) -> int:
    match = _START.search(path.name)
    return int(match.group(1)) if match else -1


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
    for path in sorted(Path(results_dir).glob(f"{split}_results_s*.csv"), key=lambda p: (_start_epoch(p), p.name)):
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


def plot_results(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw loss / top-1 / top-5 / lr (train vs val) from ``results_dir``'s CSVs into a PNG; returns its path.

    ``out`` defaults to ``<results_dir>/curves.png``. Val files are optional. Raises ``FileNotFoundError``
    when there is no ``train_results_s*.csv`` and no ``val_results_s*.csv`` at all.
    """
    results_dir = Path(results_dir)
    train, val = read_results(results_dir, "train"), read_results(results_dir, "val")
    if not train and not val:
        raise FileNotFoundError(f"{results_dir}: no rows in train_results_s*.csv / val_results_s*.csv; "
                                "point to a results folder written by training")
    out = Path(out) if out is not None else results_dir / "curves.png"
    fig = Figure(figsize=(11, 7.5), tight_layout=True)
    FigureCanvasAgg(fig)
    for i, (column, title, ylabel) in enumerate(PANELS):
        ax = fig.add_subplot(2, 2, i + 1)
        for name, curve, style in (("train", train, "-o"), ("val", val, "--s")):
            if column == "LR" and name == "val" and train:
                continue  # the val rows repeat the epoch's training lr
            epochs, values = _series(curve, column)
            if epochs:
                ax.plot(epochs, values, style, markersize=3, label=name)
        if column == "LR" and any(v > 0 for v in _series(train, "LR")[1]):
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(results_dir.name)
    with atomic_path(out, fsync=False) as tmp:  # the engine redraws per epoch: never half a PNG
        fig.savefig(tmp, dpi=100, format="png")
    return out
