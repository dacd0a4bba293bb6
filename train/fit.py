"""The epochs of a run: train, validate, save, write the CSV rows and the plot (``fit``).

Epochs are numbered 1-based everywhere a person reads them (console, CSVs, checkpoint names, plots):
epoch ``e`` is the ``e``-th pass over the training set; ``start_epoch`` counts the epochs completed before.
Only rank 0 writes files.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from data.loaders import Loaders
from data.spec import DatasetSpec
from train import distributed as dist
from train.callback import default_callbacks, speed_legend
from train.checkpoint import ResultsCsv, checkpoint_path, save_checkpoint
from train.config import RunConfig
from train.gate_monitor import GateMonitor
from train.health import LossWatch, check_data
from train.loop import EpochResult, TrainStep, evaluate, train_one_epoch
from train.progress import Monitor, format_duration

log = logging.getLogger(__name__)

PLOT_EVERY_S = 60.0  # curves.png is redrawn at most once a minute, and at the end


@dataclass
class Session:
    """What ``fit`` works on: the run's configuration and everything built from it."""

    cfg: RunConfig
    spec: DatasetSpec
    model: nn.Module
    loaders: Loaders
    step: TrainStep
    out_dir: Path
    start_epoch: int = 0


def _due(completed: int, every: float, last: int) -> bool:
    return completed == last or completed % max(1, int(every)) == 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.2f}%"


def _summary_line(phase: str, epoch: int, r: EpochResult) -> str:
    return (f"Epoch [{epoch}]  ({phase})  top-1 {_pct(r.top1)}   top-5 {_pct(r.top5)}   loss {r.loss:.5f}   "
            f"({r.samples} clips, {r.skipped} skipped)")


class _Outputs:
    """Rank 0's result files: the two CSVs, TensorBoard, the plot."""

    def __init__(self, session: Session) -> None:
        cfg, out, start = session.cfg, session.out_dir, session.start_epoch
        self.rank0 = dist.is_main()
        self.out_dir = out
        self.train_csv = ResultsCsv(out / f"train_results_s{start:04d}.csv") if self.rank0 else None
        self.val_csv = ResultsCsv(out / f"val_results_s{start:04d}.csv") if self.rank0 else None
        self.board = None
        if self.rank0 and cfg.output.tensorboard:
            from train.tensorboard import TensorboardLogger  # noqa: PLC0415  (tensorboard is optional)

            self.board = TensorboardLogger(out / "tensorboard")
        self.last_plot = time.perf_counter()
        self.title = {"network": cfg.model.network, "dataset": session.spec.name, "gates": cfg.model.gates}

    def write(self, phase: str, epoch: int, result: EpochResult) -> None:
        csv = self.train_csv if phase == "train" else self.val_csv
        if csv is not None:
            csv.write(result.as_row(epoch))
        if self.board is not None:
            self.board.log_scalars(epoch, {"loss": result.loss, "top1": result.top1, "top5": result.top5,
                                           "lr": result.lr, "skipped": result.skipped}, prefix=phase)

    def plot(self, force: bool) -> str | None:
        if not self.rank0 or not (force or time.perf_counter() - self.last_plot >= PLOT_EVERY_S):
            return None
        from train.plotting import plot_results  # noqa: PLC0415  (matplotlib only when drawing)

        self.last_plot = time.perf_counter()
        return str(plot_results(self.out_dir, title_info=self.title))

    def close(self) -> None:
        for f in (self.train_csv, self.val_csv):
            if f is not None:
                f.close()
        if self.board is not None:
            self.board.close()


def fit(s: Session) -> dict[str, Any]:
    """Epochs ``start_epoch + 1 .. --end-epoch``: train, validate (every ``--eval-frequency`` and after the
    last), save (every ``--save-frequency`` and after the last, after validation so the saved RNG state is the
    next epoch's), CSV rows and the plot. Returns the run summary."""
    cfg, end = s.cfg, s.cfg.schedule.end_epoch
    monitor = Monitor(cfg.output.log_interval, default_callbacks(s.step.device.type), end, s.start_epoch)
    log.info(speed_legend(s.step.device.type))
    plan = s.loaders.batch_sampler.current_plan
    log.info("Epoch plan: %d iterations of %s", len(plan), _plan_text(plan, dist.get_world_size()))
    outputs = _Outputs(s)
    watch = LossWatch(len(s.loaders.classes))
    gates = GateMonitor.for_model(s.model, s.out_dir, s.start_epoch, cfg.model.gates_from_epoch, outputs.board)
    check_data(len(s.loaders.train_set), len(s.loaders.val_set), cfg.optim.batch_size, len(s.loaders.classes))
    summary: dict[str, Any] = {"results_dir": str(s.out_dir), "start_epoch": s.start_epoch, "end_epoch": end,
                               "log_file": str(cfg.log_path()), "best_val_top1": None, "last_val_top1": None,
                               "last_train_top1": None, "checkpoint": None, "nonfinite_steps": 0, "history": []}
    began, last_lr = time.perf_counter(), None
    try:
        for epoch in range(s.start_epoch, end):
            done = epoch + 1
            lr = s.step.schedule.lr_at(epoch)
            if lr != last_lr:
                log.info("Epoch [%d]: learning rate %.3e", done, lr)
                last_lr = lr
            s.loaders.set_epoch(epoch)
            record: dict[str, Any] = {"epoch": done}
            t0 = time.perf_counter()
            if gates:
                gates.before("train", epoch)
            tr = train_one_epoch(s.model, s.loaders.train, s.step, epoch, plan, monitor)
            if gates:
                record["gates_train"] = gates.after("train", done)
            log.info(_summary_line("train", done, tr))
            watch.observe("train", done, tr.loss)
            outputs.write("train", done, tr)
            record["train"] = tr.as_dict()
            summary.update(nonfinite_steps=summary["nonfinite_steps"] + tr.nonfinite_steps, last_train_top1=tr.top1)
            if _due(done, cfg.output.eval_frequency, end):
                if gates:
                    gates.before("val", epoch)
                va = evaluate(s.model, s.loaders.val, s.step.device, s.step.precision, epoch, monitor)
                if gates:
                    record["gates_val"] = gates.after("val", done)
                va.lr = tr.lr
                log.info(_summary_line("val", done, va))
                watch.observe("val", done, va.loss)
                outputs.write("val", done, va)
                record["val"] = va.as_dict()
                summary["last_val_top1"] = va.top1
                if not math.isnan(va.top1):
                    summary["best_val_top1"] = max(va.top1, summary["best_val_top1"] or 0.0)
            if _due(done, cfg.output.save_frequency, end) and dist.is_main():
                path = checkpoint_path(s.out_dir, cfg.model.network, done)
                save_checkpoint(path, s.model, done, s.step.optimizer, s.step.scaler, s.step.schedule,
                                network=cfg.model.network, classes=s.loaders.classes, config=cfg.to_dict(),
                                dataset=s.spec.to_dict())
                summary["checkpoint"] = str(path)
            dist.barrier()
            monitor.epoch_seconds.append(time.perf_counter() - t0)
            eta = monitor.run_eta(epoch)
            log.info("Epoch [%d/%d] took %s; run ETA %s", done, end, format_duration(monitor.epoch_seconds[-1]),
                     format_duration(eta or 0.0))
            summary["history"].append(record)
            plotted = outputs.plot(force=done == end)
            if plotted:
                summary["plot"] = plotted
                summary["gates_plot"] = gates.plot() if gates else None  # gates.png beside curves.png
    finally:
        outputs.close()
        if gates:
            gates.close()
    summary["seconds"] = time.perf_counter() - began
    summary["train_csv"] = str(s.out_dir / f"train_results_s{s.start_epoch:04d}.csv")
    summary["val_csv"] = str(s.out_dir / f"val_results_s{s.start_epoch:04d}.csv")
    log.info("Training finished in %s: best val top-1 %s, last %s; results in %s",
             format_duration(summary["seconds"]), _pct(summary["best_val_top1"]), _pct(summary["last_val_top1"]),
             s.out_dir)
    return summary


def _plan_text(plan: list[Any], world_size: int) -> str:
    shapes: dict[tuple, int] = {}
    for shape in plan:
        key = (shape[0] * world_size, shape[1], shape[2])
        shapes[key] = shapes.get(key, 0) + 1
    return ", ".join(f"{n}x(B={b}, T={t}, S={sz})" for (b, t, sz), n in shapes.items())
