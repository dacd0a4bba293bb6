"""The epochs of a run: train, validate, save, write the CSV rows and the plot (``fit``).

Epochs are numbered 1-based everywhere a person reads them (console, CSVs, checkpoint names, plots):
epoch ``e`` is the ``e``-th pass over the training set; ``start_epoch`` counts the epochs completed before and
``start_iteration`` the steps of the next epoch already trained (a mid-epoch resume). Only rank 0 writes files.
Every epoch end saves ``_last`` (and ``_ep-XXXX`` when ``--save-frequency`` is due, ``_best`` when validation
improved, `train.results.retention`); SIGTERM/SIGUSR1/SIGINT stop after the current step with a mid-epoch ``_last``
(`train.results.preempt`), and the summary's ``preempted`` names the signal.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from data.catalog.spec import DatasetSpec
from data.pipeline.loaders import Loaders
from train import distributed as dist
from train.config import RunConfig
from train.engine.loop import EpochResult, TrainStep, evaluate, train_one_epoch
from train.monitor.callback import default_callbacks, speed_legend
from train.monitor.gate_monitor import GateMonitor
from train.monitor.health import LossWatch, check_data
from train.monitor.progress import Monitor, format_duration
from train.results.checkpoint import ResultsCsv
from train.results.preempt import Preemption
from train.results.retention import Checkpoints, remove_temp_files, unique_path

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
    start_iteration: int = 0
    best_top1: float | None = None  # of the run resumed, so _best keeps meaning "best so far"


def _due(completed: int, every: float, last: int) -> bool:
    return completed == last or completed % max(1, int(every)) == 0


def _validates(cfg: Any, completed: int, last: int) -> bool:
    """Validation after epoch ``completed``: every ``--eval-frequency`` epochs and after the last, but not in the
    clip-length warm-up, whose networks are not yet adapted to the validation clip (chance level in the demo)."""
    if _in_warmup(cfg, completed - 1):
        log.info("Epoch [%d]: no validation in the clip-length warm-up (until epoch %d)", completed,
                 cfg.schedule.clip_warmup_epochs)
        return False
    return _due(completed, cfg.output.eval_frequency, last)


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
        # a second resume from the same epoch gets ..._s<start>_r2.csv: result files are never overwritten
        self.train_csv = ResultsCsv(unique_path(out / f"train_results_s{start:04d}.csv")) if self.rank0 else None
        self.val_csv = ResultsCsv(unique_path(out / f"val_results_s{start:04d}.csv")) if self.rank0 else None
        self.board = None
        if self.rank0 and cfg.output.tensorboard:
            from train.monitor.tensorboard import TensorboardLogger  # noqa: PLC0415  (tensorboard is optional)

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
        from train.plots.curves import plot_results  # noqa: PLC0415  (matplotlib only when drawing)

        self.last_plot = time.perf_counter()
        return str(plot_results(self.out_dir, title_info=self.title))

    def close(self) -> None:
        for f in (self.train_csv, self.val_csv):
            if f is not None:
                f.close()
        if self.board is not None:
            self.board.close()


class _Epochs:
    """The per-run state of ``fit`` and one method per phase of an epoch (train, validate, save, report)."""

    def __init__(self, s: Session, guard: Preemption) -> None:
        cfg = s.cfg
        self.s, self.guard, self.end = s, guard, cfg.schedule.end_epoch
        self.monitor = Monitor(cfg.output.log_interval, default_callbacks(s.step.device.type), self.end, s.start_epoch)
        self.plan = s.loaders.batch_sampler.plan_for(s.start_epoch)
        self.to_train, self.to_val = s.loaders.to_device(s.step.device)  # --decode
        self.outputs = _Outputs(s)
        self.watch = LossWatch(len(s.loaders.classes))
        self.gates = GateMonitor.for_model(s.model, s.out_dir, s.start_epoch, cfg.model.gates_from_epoch,
                                           self.outputs.board)
        meta = {"network": cfg.model.network, "classes": s.loaders.classes, "config": cfg.to_dict(),
                "dataset": s.spec.to_dict()}
        self.keeper = Checkpoints(s.out_dir, cfg.model.network, cfg.output.keep_checkpoints, meta, s.best_top1)
        o = self.outputs
        self.summary: dict[str, Any] = {
            "results_dir": str(s.out_dir), "start_epoch": s.start_epoch, "end_epoch": self.end,
            "log_file": str(cfg.log_path()), "best_val_top1": None, "last_val_top1": None, "last_train_top1": None,
            "checkpoint": None, "nonfinite_steps": 0, "history": [], "preempted": None,
            "train_csv": str(o.train_csv.path) if o.train_csv else None,
            "val_csv": str(o.val_csv.path) if o.val_csv else None}

    def save(self, epoch: int, numbered: bool, position: dict[str, Any] | None = None,
             top1: float | None = None) -> None:
        """Rank 0 writes the checkpoint (`train.results.retention`); every rank waits for it."""
        if dist.is_main():
            path = self.keeper.save(self.s.model, self.s.step, epoch, numbered=numbered, position=position,
                                    val_top1=top1)
            self.summary["checkpoint"] = str(path)
        dist.barrier()

    def save_position(self, epoch: int, steps: int) -> None:
        """A mid-epoch ``_last`` checkpoint after ``steps`` steps of (0-based) ``epoch``."""
        self.save(epoch, False, {"iteration": steps, "plan_length": len(self.plan), "sampler_epoch": epoch})

    def train(self, epoch: int, record: dict[str, Any]) -> EpochResult | None:
        """One training pass (from the resumed position in the first epoch); None when a signal stopped it."""
        s, done = self.s, epoch + 1
        first = s.start_iteration if epoch == s.start_epoch else 0
        s.loaders.set_epoch(epoch, first)
        plan = s.loaders.batch_sampler.current_plan
        if plan is not self.plan:  # the clip-length warm-up starts or ends
            log.info("Epoch [%d]: plan %s%s", done, _plan_text(plan, dist.get_world_size()),
                     _warmup_note(s.cfg, epoch))
            self.plan = plan
        if self.gates:
            self.gates.before("train", epoch)
        loader = self.guard.watch(s.loaders.train, first, lambda steps: self.save_position(epoch, steps))
        tr = train_one_epoch(s.model, loader, s.step, epoch, self.plan, self.monitor, start=first,
                             to_device=self.to_train)
        if self.gates:
            record["gates_train"] = self.gates.after("train", done)
        if loader.stopped_at is not None:
            _stop(self.guard, self.summary, lambda: self.save_position(epoch, loader.stopped_at), s.out_dir,
                  f"epoch {done}, after step {loader.stopped_at} of {len(self.plan)}")
            return None
        self.report("train", done, tr, record)
        self.summary.update(nonfinite_steps=self.summary["nonfinite_steps"] + tr.nonfinite_steps,
                            last_train_top1=tr.top1)
        return tr

    def validate(self, epoch: int, lr: float | None, record: dict[str, Any]) -> EpochResult:
        s, done = self.s, epoch + 1
        if self.gates:
            self.gates.before("val", epoch)
        va = evaluate(s.model, s.loaders.val, s.step.device, s.step.precision, epoch, self.monitor,
                      to_device=self.to_val)
        if self.gates:
            record["gates_val"] = self.gates.after("val", done)
        va.lr = lr
        self.report("val", done, va, record)
        self.summary["last_val_top1"] = va.top1
        if not math.isnan(va.top1):
            self.summary["best_val_top1"] = max(va.top1, self.summary["best_val_top1"] or 0.0)
        return va

    def report(self, phase: str, done: int, result: EpochResult, record: dict[str, Any]) -> None:
        """The phase's summary line, the loss check, the CSV row and TensorBoard."""
        log.info(_summary_line(phase, done, result))
        self.watch.observe(phase, done, result.loss)
        self.outputs.write(phase, done, result)
        record[phase] = result.as_dict()

    def finish(self, epoch: int, seconds: float, record: dict[str, Any]) -> None:
        """The epoch's time and the run's ETA; the plots (at most once a minute, and after the last epoch)."""
        done = epoch + 1
        self.monitor.epoch_seconds.append(seconds)
        log.info("Epoch [%d/%d] took %s; run ETA %s", done, self.end, format_duration(seconds),
                 format_duration(self.monitor.run_eta(epoch) or 0.0))
        self.summary["history"].append(record)
        plotted = self.outputs.plot(force=done == self.end)
        if plotted:
            self.summary["plot"] = plotted
            self.summary["gates_plot"] = self.gates.plot() if self.gates else None  # gates.png beside curves.png

    def close(self) -> None:
        self.outputs.close()
        if self.gates:
            self.gates.close()


def fit(s: Session) -> dict[str, Any]:
    """Epochs ``start_epoch + 1 .. --end-epoch``: train, validate (every ``--eval-frequency`` and after the
    last), save (after validation so the saved RNG state is the next epoch's), CSV rows and the plot.
    Returns the run summary (``preempted``: the signal's name when a signal stopped the run)."""
    cfg = s.cfg
    log.info(speed_legend(s.step.device.type))
    check_data(len(s.loaders.train_set), len(s.loaders.val_set), cfg.optim.batch_size, len(s.loaders.classes))
    began, last_lr = time.perf_counter(), None
    with Preemption(cfg.output.save_every_minutes) as guard:
        run = _Epochs(s, guard)
        log.info("Epoch plan: %d iterations of %s%s", len(run.plan), _plan_text(run.plan, dist.get_world_size()),
                 _warmup_note(cfg, s.start_epoch))
        try:
            for epoch in range(s.start_epoch, run.end):
                done, t0, record = epoch + 1, time.perf_counter(), {"epoch": epoch + 1}
                if (lr := s.step.schedule.lr_at(epoch)) != last_lr:
                    log.info("Epoch [%d]: learning rate %.3e", done, lr)
                    last_lr = lr
                tr = run.train(epoch, record)
                if tr is None:
                    break  # preempted inside the epoch: its position is saved
                va = run.validate(epoch, tr.lr, record) if _validates(cfg, done, run.end) else None
                top1 = va.top1 if va is not None and not math.isnan(va.top1) else None
                run.save(done, _due(done, cfg.output.save_frequency, run.end), top1=top1)
                run.finish(epoch, time.perf_counter() - t0, record)
                if done < run.end and guard.stop_requested():
                    _stop(guard, run.summary, None, s.out_dir, f"the end of epoch {done}")
                    break
        finally:
            run.close()
    summary = run.summary
    summary["seconds"] = time.perf_counter() - began
    if not summary["preempted"]:
        log.info("Training finished in %s: best val top-1 %s, last %s; results in %s",
                 format_duration(summary["seconds"]), _pct(summary["best_val_top1"]),
                 _pct(summary["last_val_top1"]), s.out_dir)
    return summary


def _stop(guard: Preemption, summary: dict[str, Any], save: Any, out_dir: Path, where: str) -> None:
    """A signal stopped the run at ``where``: save the position (``save``, None if just saved), one line."""
    if save is not None:
        save()
    if dist.is_main():
        remove_temp_files(out_dir)
    waited = time.monotonic() - (guard.received_at or time.monotonic())
    summary["preempted"] = guard.name or "signal on another rank"
    log.warning("%s: stopped at %s, %.1f s after the signal; checkpoint `%s'; continue with --resume-epoch auto",
                summary["preempted"], where, waited, summary["checkpoint"])


def _in_warmup(cfg: Any, epoch: int) -> bool:
    """True while 0-based ``epoch`` is in the clip-length warm-up (``--clip-warmup-epochs``)."""
    return epoch < cfg.schedule.clip_warmup_epochs


def _warmup_note(cfg: Any, epoch: int) -> str:
    """' (clip-length warm-up until epoch E)' while 0-based ``epoch`` is in the warm-up, else ''."""
    return f" (clip-length warm-up until epoch {cfg.schedule.clip_warmup_epochs})" if _in_warmup(cfg, epoch) else ""


def _plan_text(plan: list[Any], world_size: int) -> str:
    shapes: dict[tuple, int] = {}
    for shape in plan:
        key = (shape[0] * world_size, shape[1], shape[2])
        shapes[key] = shapes.get(key, 0) + 1
    return ", ".join(f"{n}x(B={b}, T={t}, S={sz})" for (b, t, sz), n in shapes.items())
