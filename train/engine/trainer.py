"""The epochs of a run (:class:`Trainer`): train, validate, save, write the CSV rows and the plot.

Read :meth:`Trainer.fit` (the epochs), then :func:`train.engine.loop.train_one_epoch` (the steps). Epochs are
numbered 1-based everywhere a person reads them (console, CSVs, checkpoint names, plots): epoch ``e`` is the
``e``-th pass over the training set; ``start_epoch`` counts the epochs completed before and ``start_iteration``
the steps of the next epoch already trained (a mid-epoch resume, whose checkpoint carries those steps' sums, so
the epoch's row covers all of it). Only rank 0 writes files. Every epoch end saves ``_last`` (and ``_ep-XXXX``
when ``--save-frequency`` is due, ``_best`` when validation improved, `train.results.retention`);
SIGTERM/SIGUSR1/SIGINT stop after the current optimiser step with a mid-epoch ``_last``
(`train.results.preempt`), and the summary's ``preempted`` names the signal.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch.nn as nn

from data.catalog.spec import DatasetSpec
from data.pipeline.loaders import Loaders
from network.weights import unwrap_model
from train import distributed as dist
from train.config import RunConfig
from train.engine.loop import EpochResult, TrainStep, evaluate, skipped_clips, train_one_epoch
from train.monitor.callback import default_callbacks, speed_legend
from train.monitor.gate_monitor import GateMonitor
from train.monitor.health import LossWatch, check_data
from train.monitor.metric import SLOTS, RunningMetrics
from train.monitor.progress import Monitor, format_duration
from train.results.checkpoint import RESULT_FIELDS, ResultsCsv, train_list_fingerprint
from train.results.preempt import Preemption
from train.results.retention import Checkpoints, remove_temp_files, unique_path

log = logging.getLogger(__name__)

PLOT_EVERY_S = 60.0  # curves.png is redrawn at most once a minute, and at the end


class Trainer:
    """One run's epochs ``start_epoch + 1 .. --end-epoch`` on ``model`` with ``step``; ``best_top1`` is the
    resumed run's (so ``_best`` keeps meaning "best so far"), ``carried`` the sums of the resumed epoch's steps
    before its mid-epoch checkpoint."""

    def __init__(self, cfg: RunConfig, spec: DatasetSpec, model: nn.Module, loaders: Loaders, step: TrainStep,
                 out_dir: Path, start_epoch: int = 0, start_iteration: int = 0, best_top1: float | None = None,
                 carried: dict[str, float] | None = None) -> None:
        self.cfg, self.spec, self.model, self.loaders, self.step = cfg, spec, model, loaders, step
        self.out_dir = out_dir
        self.start_epoch, self.start_iteration, self.carried = start_epoch, start_iteration, carried
        self.end, self.rank0 = cfg.schedule.end_epoch, dist.is_main()
        self.monitor = Monitor(cfg.output.log_interval, default_callbacks(step.device.type), self.end, start_epoch)
        self.plan = loaders.batch_sampler.plan_for(start_epoch)
        self.train_list = train_list_fingerprint(loaders.train_set.records)  # checked by a mid-epoch resume
        self.to_train, self.to_val = loaders.to_device(step.device)  # --decode
        self.watch = LossWatch(len(loaders.classes))
        self.meter = RunningMetrics(step.device)
        # a second resume from the same epoch gets ..._s<start>_r2.csv: result files are never overwritten
        # with --ema-decay the validation CSV has one more column, EmaTop1; without it the original columns
        columns = {"train": RESULT_FIELDS, "val": RESULT_FIELDS + (("EmaTop1",) if step.ema is not None else ())}
        self.csv = {phase: ResultsCsv(unique_path(out_dir / f"{phase}_results_s{start_epoch:04d}.csv"), columns[phase])
                    for phase in ("train", "val")} if self.rank0 else {}
        self.board = None
        if self.rank0 and cfg.output.tensorboard:
            from train.monitor.tensorboard import TensorboardLogger  # noqa: PLC0415  (tensorboard is optional)

            self.board = TensorboardLogger(out_dir / "tensorboard")
        self.gates = GateMonitor.for_model(model, out_dir, start_epoch, cfg.model.gates_from_epoch, self.board)
        meta = {"network": cfg.model.network, "classes": loaders.classes, "config": cfg.to_dict(),
                "dataset": spec.to_dict()}
        self.keeper = Checkpoints(out_dir, cfg.model.network, cfg.output.keep_checkpoints, meta, best_top1)
        self.last_plot = time.perf_counter()
        self.summary: dict[str, Any] = {
            "results_dir": str(out_dir), "start_epoch": start_epoch, "end_epoch": self.end,
            "log_file": str(cfg.log_path()), "best_val_top1": best_top1, "last_val_top1": None, "last_train_top1": None,
            "checkpoint": None, "nonfinite_steps": 0, "history": [], "preempted": None,
            "train_csv": str(self.csv["train"].path) if self.csv else None,
            "val_csv": str(self.csv["val"].path) if self.csv else None}

    def fit(self) -> dict[str, Any]:
        """Train, validate (every ``--eval-frequency`` and after the last epoch), save (after validation so the
        saved RNG state is the next epoch's), CSV rows and the plot. Returns the run summary (``preempted``: the
        signal's name when a signal stopped the run)."""
        cfg, loaders = self.cfg, self.loaders
        log.info(speed_legend(self.step.device.type))
        check_data(len(loaders.train_set), len(loaders.val_set), cfg.optim.batch_size, len(loaders.classes))
        log.info("Epoch plan: %d iterations of %s%s", len(self.plan), _plan_text(self.plan, dist.get_world_size()),
                 _warmup_note(cfg, self.start_epoch))
        began, last_lr = time.perf_counter(), None
        with Preemption(cfg.output.save_every_minutes) as self.guard:
            try:
                for epoch in range(self.start_epoch, self.end):
                    done, t0, record = epoch + 1, time.perf_counter(), {"epoch": epoch + 1}
                    if (lr := self.step.schedule.lr_at(epoch)) != last_lr:
                        log.info("Epoch [%d]: learning rate %.3e", done, lr)
                        last_lr = lr
                    tr = self.train_epoch(epoch, record)
                    if tr is None:
                        break  # preempted inside the epoch: its position is saved
                    va = self.validate(epoch, tr.lr, record) if _validates(cfg, done, self.end) else None
                    top1 = va.top1 if va is not None and not math.isnan(va.top1) else None
                    self.save(done, _due(done, cfg.output.save_frequency, self.end), top1=top1)
                    self.finish(epoch, time.perf_counter() - t0, record)
                    if done < self.end and self.guard.stop_requested():
                        self.stop(None, f"the end of epoch {done}")
                        break
            finally:
                self.close()
        self.summary["seconds"] = time.perf_counter() - began
        if not self.summary["preempted"]:
            log.info("Training finished in %s: best val top-1 %s, last %s; results in %s",
                     format_duration(self.summary["seconds"]), _pct(self.summary["best_val_top1"]),
                     _pct(self.summary["last_val_top1"]), self.out_dir)
        return self.summary

    def train_epoch(self, epoch: int, record: dict[str, Any]) -> EpochResult | None:
        """One training pass (from the resumed position in the first epoch); None when a signal stopped it."""
        loaders, done = self.loaders, epoch + 1
        first = self.start_iteration if epoch == self.start_epoch else 0
        loaders.set_epoch(epoch, first)
        if loaders.batch_sampler.current_plan is not self.plan:  # the clip-length warm-up starts or ends
            self.plan = loaders.batch_sampler.current_plan
            log.info("Epoch [%d]: plan %s%s", done, _plan_text(self.plan, dist.get_world_size()),
                     _warmup_note(self.cfg, epoch))
        if self.gates:
            self.gates.before("train", epoch)
        self.meter = RunningMetrics(self.step.device, self.carried if first else None, run=self.meter.health[0])
        loader = self.guard.watch(loaders.train, first, lambda steps: self.save_position(epoch, steps),
                                  every=self.poll_every())
        tr = train_one_epoch(self.model, loader, self.step, epoch, self.plan, self.monitor, start=first,
                             to_device=self.to_train, meter=self.meter)
        if self.gates:
            record["gates_train"] = self.gates.after("train", done)
        if loader.stopped_at is not None:
            self.stop(lambda: self.save_position(epoch, loader.stopped_at),
                      f"epoch {done}, after step {loader.stopped_at} of {len(self.plan)}")
            return None
        self.report("train", done, tr, record)
        self.summary.update(nonfinite_steps=self.summary["nonfinite_steps"] + tr.nonfinite_steps,
                            last_train_top1=tr.top1)
        return tr

    def poll_every(self) -> int:
        """Steps between two preemption questions: one optimiser step (the gradients of a partial
        ``--accumulate-grad`` group are not saved); under DDP on CUDA also a multiple of ``--log-interval``,
        since the question is then a collective whose answer the host must wait for."""
        every = self.step.accumulate
        if dist.get_world_size() > 1 and self.step.device.type == "cuda":
            every = math.lcm(every, self.cfg.output.log_interval)
        return every

    def validate(self, epoch: int, lr: float | None, record: dict[str, Any]) -> EpochResult:
        done = epoch + 1
        # the ranks validate (and rank 0 saves) one model: rank 0's BatchNorm statistics, as in its checkpoint
        dist.broadcast_buffers(unwrap_model(self.model))
        if self.step.ema is not None:
            dist.broadcast_buffers(self.step.ema.module)
        if self.gates:
            self.gates.before("val", epoch)
        va = evaluate(self.model, self.loaders.val, self.step.device, self.step.precision, epoch, self.monitor,
                      to_device=self.to_val)
        if self.gates:
            record["gates_val"] = self.gates.after("val", done)
        va.lr = lr
        ema = None
        if self.step.ema is not None:  # the average, on the same clips; _best still follows the model's top-1
            ema = evaluate(self.step.ema.module, self.loaders.val, self.step.device, self.step.precision, epoch,
                           to_device=self.to_val)
            va.ema_top1 = ema.top1
        self.report("val", done, va, record)
        if ema is not None:
            log.info("Epoch [%d]  (val, EMA weights)  top-1 %s   top-5 %s   loss %.5f", done, _pct(ema.top1),
                     _pct(ema.top5), ema.loss)
            self.summary["last_val_ema_top1"] = ema.top1
        self.summary["last_val_top1"] = va.top1
        if not math.isnan(va.top1):
            self.summary["best_val_top1"] = max(va.top1, self.summary["best_val_top1"] or 0.0)
        return va

    def report(self, phase: str, done: int, result: EpochResult, record: dict[str, Any]) -> None:
        """The phase's summary line, the loss check, the CSV row and TensorBoard."""
        log.info(_summary_line(phase, done, result))
        if result.nonfinite_rows:
            log.warning("Epoch [%d] (%s): %d clip(s) gave non-finite outputs (NaN/inf): not scored, top-1 and "
                        "top-5 are invalid (NaN)%s", done, phase, result.nonfinite_rows,
                        "; this epoch cannot become _best" if phase == "val" else "")
        self.watch.observe(phase, done, result.loss)
        if phase in self.csv:
            self.csv[phase].write(result.as_row(done))
        if self.board is not None:
            self.board.log_scalars(done, {"loss": result.loss, "top1": result.top1, "top5": result.top5,
                                          "lr": result.lr, "skipped": result.skipped,
                                          "nonfinite": result.nonfinite_rows or None,
                                          "grad_norm": result.grad_norm}, prefix=phase)
        record[phase] = result.as_dict()

    def save(self, epoch: int, numbered: bool, position: dict[str, Any] | None = None,
             top1: float | None = None) -> None:
        """Rank 0 writes the checkpoint (`train.results.retention`); every rank waits for it."""
        if self.rank0:
            path = self.keeper.save(self.model, self.step, epoch, numbered=numbered, position=position, val_top1=top1)
            self.summary["checkpoint"] = str(path)
        dist.barrier()

    def save_position(self, epoch: int, steps: int) -> None:
        """A mid-epoch ``_last`` checkpoint after ``steps`` steps of (0-based) ``epoch``, with the sums of those
        steps (read over all ranks, checked by the non-finite policy first: bad weights are never saved)."""
        sums = self.meter.read(reduce=True, full=True, skipped_clips=skipped_clips(self.loaders.train))
        self.step.check(sums, epoch)
        partial = {**{k: sums[k] for k in SLOTS}, "seconds": self.meter.seconds()}
        self.save(epoch, False, {"iteration": steps, "plan_length": len(self.plan), "sampler_epoch": epoch,
                                 "partial": partial, "train_list": self.train_list})

    def stop(self, save: Any, where: str) -> None:
        """A signal stopped the run at ``where``: save the position (``save``, None if just saved), one line."""
        if save is not None:
            save()
        if self.rank0:
            remove_temp_files(self.out_dir)
        waited = time.monotonic() - (self.guard.received_at or time.monotonic())
        self.summary["preempted"] = self.guard.name or "signal on another rank"
        log.warning("%s: stopped at %s, %.1f s after the signal; checkpoint `%s'; continue with --resume-epoch auto",
                    self.summary["preempted"], where, waited, self.summary["checkpoint"])

    def finish(self, epoch: int, seconds: float, record: dict[str, Any]) -> None:
        """The epoch's time and the run's ETA; the plots (at most once a minute, and after the last epoch)."""
        done = epoch + 1
        self.monitor.epoch_seconds.append(seconds)
        log.info("Epoch [%d/%d] took %s; run ETA %s", done, self.end, format_duration(seconds),
                 format_duration(self.monitor.run_eta(epoch) or 0.0))
        self.summary["history"].append(record)
        if self.rank0 and (done == self.end or time.perf_counter() - self.last_plot >= PLOT_EVERY_S):
            from train.plots.curves import plot_results  # noqa: PLC0415  (matplotlib only when drawing)

            self.last_plot = time.perf_counter()
            self.summary["plot"] = str(plot_results(self.out_dir, title_info={
                "network": self.cfg.model.network, "dataset": self.spec.name, "gates": self.cfg.model.gates}))
            self.summary["gates_plot"] = self.gates.plot() if self.gates else None  # gates.png beside curves.png

    def close(self) -> None:
        for f in self.csv.values():
            f.close()
        if self.board is not None:
            self.board.close()
        if self.gates:
            self.gates.close()


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
