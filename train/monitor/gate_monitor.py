"""The temporal gate during a run: warm-up switch, per-epoch pass rates to the CSV, TensorBoard, log and plot.

Only models with gated SR blocks (``--gates True``) get a :class:`GateMonitor`. The counters live on the device
(`network.gate`); they are read once per phase (one host synchronisation, summed over ranks).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch.nn as nn

from network.srtg import gate_pass_rates, gated_blocks, reset_gate_stats, set_gates_active
from train import distributed as dist
from train.monitor.gate_report import GateCsv, gates_csv_path, plot_gates
from train.results.retention import unique_path

log = logging.getLogger(__name__)


class GateMonitor:
    """Switches the gate on at ``--gates-from-epoch`` and records each phase's pass rate per block."""

    def __init__(self, model: nn.Module, out_dir: Path, start_epoch: int, gates_from_epoch: int,
                 board: Any = None) -> None:
        self.model, self.out_dir, self.from_epoch, self.board = model, out_dir, int(gates_from_epoch), board
        # a second run from the same start gets gates_s<start>_r2.csv, as the result CSVs: nothing is overwritten
        self.csv = GateCsv(unique_path(gates_csv_path(out_dir, start_epoch))) if dist.is_main() else None

    @classmethod
    def for_model(cls, model: nn.Module, out_dir: Path, start_epoch: int, gates_from_epoch: int,
                  board: Any = None) -> GateMonitor | None:
        """A monitor when ``model`` has gated SR blocks, else None."""
        return cls(model, out_dir, start_epoch, gates_from_epoch, board) if gated_blocks(model) else None

    def before(self, phase: str, epoch: int) -> None:
        """Reset the counters; in training, the gate is applied from (0-based) epoch ``gates_from_epoch`` on."""
        reset_gate_stats(self.model)
        if phase == "train":
            active = epoch >= self.from_epoch
            set_gates_active(self.model, active)
            if epoch == self.from_epoch and epoch > 0:
                log.info("Epoch [%d]: temporal gates applied from now on (--gates-from-epoch %d)", epoch + 1,
                         self.from_epoch)

    def after(self, phase: str, epoch: int) -> dict[str, float]:
        """Pass rates of the phase just run (1-based ``epoch``): logged, written to the CSV and TensorBoard."""
        rates = gate_pass_rates(self.model, reduce=dist.all_reduce_sum)
        if self.csv is not None:
            self.csv.write_rates(epoch, phase, rates)
            shown = ", ".join(f"{name} {'n/a' if math.isnan(v) else f'{100 * v:.0f}%'}" for name, v in rates.items())
            log.info("Epoch [%d]  (%s)  gate pass rate: %s", epoch, phase, shown)
            if self.board is not None:
                self.board.log_scalars(epoch, {name: v for name, v in rates.items() if not math.isnan(v)},
                                       prefix=f"gates/{phase}")
        return rates

    def plot(self) -> str | None:
        """Redraw ``gates.png`` (rank 0)."""
        if self.csv is None:
            return None
        try:
            return str(plot_gates(self.out_dir))
        except FileNotFoundError:  # no block checked a sample yet
            return None

    def close(self) -> None:
        if self.csv is not None:
            self.csv.close()
