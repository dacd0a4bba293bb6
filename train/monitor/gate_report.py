"""Temporal-gate pass rates per epoch: the ``gates_s<start:04d>.csv`` file of a run and its plot ``gates.png``.

The CSV has one row per (epoch, phase, gated SR block): ``Epoch,Phase,Block,PassRate``, where Phase is
``train`` or ``val``, Block a module name such as ``layer1.0.sar`` and PassRate the fraction of samples whose
gate passed during that epoch (empty when the block checked no sample). A resumed run starts a new file, so
files are read in order of their start epoch and a later file overrides the (epoch, phase, block) it repeats.
"""
from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from data.store.atomic import atomic_path
from train.plots.curves import epoch_axis
from train.results.checkpoint import ResultsCsv

GATE_FIELDS = ("Epoch", "Phase", "Block", "PassRate")
PHASES = ("train", "val")
_START = re.compile(r"^gates_s(\d+)(?:_r(\d+))?\.csv$")  # gates_s<start>[_r<n>].csv: the n-th run from start

# {phase: {block: {epoch: pass rate}}}
GateHistory = dict[str, dict[str, dict[int, float]]]


def gates_csv_path(results_dir: str | Path, start_epoch: int) -> Path:
    """``<results_dir>/gates_s<start:04d>.csv`` (the naming of ``train_results_s<start>.csv``)."""
    return Path(results_dir) / f"gates_s{start_epoch:04d}.csv"


class GateCsv(ResultsCsv):
    """Writer of ``gates_s<start>.csv``; flushed after every epoch's rows."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, GATE_FIELDS)

    def write_rates(self, epoch: int, phase: str, rates: Mapping[str, float]) -> None:
        """One row per block of ``rates`` (``network.gate.gate_pass_rates``); NaN is written as empty."""
        if phase not in PHASES:
            raise ValueError(f"gate CSV phase must be one of {', '.join(PHASES)}, got '{phase}'")
        for block, rate in rates.items():
            self.write({"Epoch": epoch, "Phase": phase, "Block": block,
                        "PassRate": "" if math.isnan(rate) else f"{rate:.6f}"})


def _csv_files(source: str | Path) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    files = [(m, p) for p in source.glob("gates_s*.csv") if (m := _START.match(p.name))]
    return [p for m, p in sorted(files, key=lambda f: (int(f[0].group(1)), int(f[0].group(2) or 1)))]


def read_gates(source: str | Path) -> GateHistory:
    """``{phase: {block: {epoch: rate}}}`` from one gates CSV or every ``gates_s*.csv`` of a results folder.

    Empty PassRate cells (no sample checked) are left out. A bad header or value raises ``ValueError``
    naming ``file:line``.
    """
    history: GateHistory = {}
    for path in _csv_files(source):
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != GATE_FIELDS:
                raise ValueError(f"{path}: header {reader.fieldnames} is not {','.join(GATE_FIELDS)}; "
                                 "point to a gates_s*.csv written by training")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if row["PassRate"] in ("", None):
                    continue
                if row["Phase"] not in PHASES:
                    raise ValueError(f"{where}: phase '{row['Phase']}' is not train or val; fix or delete the row")
                try:
                    epoch, rate = int(row["Epoch"]), float(row["PassRate"])
                except (TypeError, ValueError):
                    raise ValueError(f"{where}: Epoch or PassRate is not a number; fix or delete the row") from None
                history.setdefault(row["Phase"], {}).setdefault(row["Block"], {})[epoch] = rate
    return history


def plot_gates(source: str | Path, out_png: str | Path | None = None) -> Path:
    """Draw the pass rate of every gated block over epochs, train and val side by side; returns the PNG path.

    ``source`` is a gates CSV or a results folder; ``out_png`` defaults to ``gates.png`` beside it. Raises
    ``FileNotFoundError`` when there is no pass rate to draw.
    """
    source = Path(source)
    history = read_gates(source)
    if not any(history.values()):
        raise FileNotFoundError(f"{source}: no pass rates in gates_s*.csv; train with --gates True first")
    folder = source if source.is_dir() else source.parent
    out = Path(out_png) if out_png is not None else folder / "gates.png"
    blocks = sorted({b for per_phase in history.values() for b in per_phase},
                    key=lambda b: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", b)])
    styles = {b: {"color": f"C{i % 10}", "linestyle": "-" if i < 10 else "--"} for i, b in enumerate(blocks)}
    fig = Figure(figsize=(11, 4.5), tight_layout=True)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, len(PHASES), i + 1) for i in range(len(PHASES))]
    every_epoch = sorted({e for per_phase in history.values() for series in per_phase.values() for e in series})
    for ax, phase in zip(axes, PHASES):
        for block in blocks:
            series = history.get(phase, {}).get(block)
            if series:
                epochs = sorted(series)
                ax.plot(epochs, [series[e] for e in epochs], marker="o", markersize=3, label=block, **styles[block])
        ax.set_ylim(-0.03, 1.03)
        epoch_axis(ax, every_epoch)  # both panels on the same epochs, whole-number ticks
        ax.set_title(f"{phase}: temporal-gate pass rate")
        ax.set_xlabel("epoch")
        ax.set_ylabel("fraction of samples passed")
        ax.grid(True, alpha=0.3)
    legend = {}
    for ax in axes:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    axes[-1].legend(list(legend.values()), list(legend), fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
                    title="SR block")
    fig.suptitle(folder.name)
    with atomic_path(out, fsync=False) as tmp:  # redrawn per epoch: never half a PNG
        fig.savefig(tmp, dpi=100, format="png")
    return out
