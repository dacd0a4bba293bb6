"""The one training entry point behind every ``train_<dataset>.py``: ``run(spec, argv)``.

``run`` parses the command line into a :class:`~train.config.RunConfig`, starts the processes (torchrun's,
or ``--gpus N`` local ones), and in each process sets up logging, device, data, model, optimiser, schedule and
the starting point, then hands over to :class:`train.engine.trainer.Trainer`. It only orchestrates: devices live in
`train.distributed`, models in `network`, loaders in `data`, checkpoints in `train.results.checkpoint`.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.multiprocessing as mp
import torch.nn as nn

from data.catalog.datasets import spec_from_dict
from data.catalog.spec import DatasetSpec
from data.pipeline.loaders import LoaderConfig, build_loaders
from data.pipeline.rng import STREAMS, seed_everything
from network.compile import compile_backbone
from network.registry import build_model, input_spec_for
from train import distributed as dist
from train.config import RunConfig, changed_fields
from train.engine.cli import parse_config, parse_gpus
from train.engine.ema import ModelEma, restore_ema
from train.engine.loop import NonFiniteLossError, TrainStep, make_scaler, resolve_precision
from train.engine.lr_scheduler import build_schedule
from train.engine.optim import build_optimizer
from train.engine.targets import TargetTransform
from train.engine.trainer import Trainer
from train.monitor.logs import close_logging, setup_logging
from train.results.checkpoint import (
    StartPoint,
    check_same_train_list,
    resolve_start,
    restore,
    train_list_fingerprint,
)
from train.results.folder import claim
from train.results.lock import FolderBusyError
from train.results.preempt import REQUEUE_EXIT, StartupPreempted, StartupSignals
from train.results.retention import CheckpointSaveError, check_writable, estimate_bytes

log = logging.getLogger(__name__)

# Bad input or a stopped run: one line, no traceback (unless --debug-mode), exit code 1.
USER_ERRORS = (FileNotFoundError, ValueError, NonFiniteLossError, CheckpointSaveError, dist.CollectiveTimeout,
               dist.RankExited)


def num_processes(cfg: RunConfig, device_type: str) -> int:
    """Processes to start for ``--gpus``: its count, else every visible GPU (CUDA) or 1 (CPU)."""
    count, ids = parse_gpus(cfg.hardware.gpus)
    if count is not None:
        if device_type == "cuda" and ids is None and count > torch.cuda.device_count():
            raise ValueError(f"--gpus {count}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return count
    return torch.cuda.device_count() if device_type == "cuda" else 1


def run(spec: DatasetSpec, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train on ``spec`` with the command line ``argv`` (default ``sys.argv[1:]``); returns rank 0's summary.

    Under torchrun (``RANK``/``WORLD_SIZE`` set) this process is one rank. Otherwise ``--gpus N`` with N > 1
    spawns N local processes (NCCL on GPUs, gloo on CPU) and waits for them.
    """
    cfg = parse_config(spec, argv)
    if spec.variants:
        spec = spec.with_variant(cfg.data.variant)
    if dist.launched_by_torchrun() or dist.launched_by_srun():
        return _process(spec, cfg)
    count, ids = parse_gpus(cfg.hardware.gpus)
    if ids is not None:  # the original's device list; must be set before CUDA is first queried
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in ids)
    nprocs = num_processes(cfg, dist.pick_device(cfg.hardware.device).type)
    if nprocs <= 1:
        return _process(spec, cfg)
    queue = mp.get_context("spawn").SimpleQueue()
    dist.spawn(_spawned, nprocs, args=(spec.to_dict(), cfg.to_dict(), queue))
    return queue.get() if not queue.empty() else {}


def _spawned(spec: dict[str, Any], cfg: dict[str, Any], queue: Any) -> None:
    summary = _process(spec_from_dict(spec), RunConfig.from_dict(cfg))
    if dist.env_info().is_main:
        queue.put(summary)


def _process(spec: DatasetSpec, cfg: RunConfig) -> dict[str, Any]:
    info = dist.env_info()
    signals = StartupSignals().__enter__()  # from the first moment: a signal always gives the documented exit
    try:
        device = dist.pick_device(cfg.hardware.device, info.local_rank)
        dist.init_process_group(info, device, cfg.hardware.dist_timeout)
        return train(spec, cfg, info, device, signals)
    except StartupPreempted as exc:  # SIGTERM/SIGUSR1 before the first step: one line, exit 75 (requeue)
        return _preempted_at_start(exc, cfg)
    except USER_ERRORS as exc:
        if not isinstance(exc, FolderBusyError) or not info.is_main:  # before logging: main() prints it
            log.error("%s", exc, exc_info=cfg.output.debug_mode)
            exc.logged = True  # main() does not print it a second time
        raise
    except RuntimeError as exc:
        timeout = dist.as_timeout(exc, info, cfg.hardware.dist_timeout)
        if timeout is None:
            raise
        log.error("%s", timeout)
        timeout.logged = True
        raise timeout from None
    finally:
        dist.destroy_process_group()
        close_logging()
        signals.__exit__()


def loader_config(cfg: RunConfig) -> LoaderConfig:
    """The data settings of the run."""
    d, s = cfg.data, cfg.schedule
    return LoaderConfig(clip_length=d.clip_length, clip_size=d.clip_size, batch_size=cfg.optim.batch_size,
                        train_frame_interval=d.train_frame_interval, val_frame_interval=d.val_frame_interval,
                        long_cycles=s.long_cycles, short_cycles=s.short_cycles, workers=d.workers,
                        seed=cfg.optim.random_seed, val_clip_length=d.val_clip_length, val_clip_size=d.val_clip_size,
                        decode=cfg.hardware.decode, source=d.source, max_missing=d.max_missing,
                        clip_warmup=(s.clip_warmup_epochs, s.clip_warmup_length or 0, s.clip_warmup_size or 0))


def _header(cfg: RunConfig, spec: DatasetSpec, info: dist.DistInfo, device: torch.device, precision: str) -> None:
    log.info("Using pytorch %s (%s)", torch.__version__, os.path.dirname(torch.__file__))
    log.info("Start training with configuration:\n%s", json.dumps(cfg.to_dict(), indent=2, default=str))
    log.info("Task '%s' on %s; device %s, %d process(es), precision %s", cfg.task(), spec.name, device,
             info.world_size, precision)
    if spec.script == "train.py":  # a prepared data set found at --dataset: its name comes from there
        log.info("Data set %s: named after %s (results in %s)", spec.name, cfg.data.dataset, cfg.results_dir())


def train(spec: DatasetSpec, cfg: RunConfig, info: dist.DistInfo, device: torch.device,
          signals: StartupSignals | None = None) -> dict[str, Any]:
    """Everything one process does; returns the run summary (meaningful on rank 0)."""
    out_dir = cfg.results_dir()
    claimed = None
    try:
        if info.is_main:
            claimed = claim(cfg, out_dir)  # lock, start point, no silent overwrite; before train.log is opened
    finally:
        if not dist.agree(claimed is not None or not info.is_main) and not info.is_main:
            raise FolderBusyError(f"{out_dir}: rank 0 could not claim the results folder (see its error)")
    try:
        if not dist.agree(claimed is None or claimed.finished is None):  # nothing to train: say so, write nothing
            return _finished(out_dir, claimed)
        return _train(spec, cfg, info, device, out_dir, claimed, signals)
    finally:
        if claimed is not None:
            claimed.lock.release()


def _train(spec: DatasetSpec, cfg: RunConfig, info: dist.DistInfo, device: torch.device, out_dir: Any,
           claimed: Any, signals: StartupSignals | None = None) -> dict[str, Any]:
    setup_logging(cfg.log_path(), cfg.output.debug_mode, info.rank)
    for note in claimed.notes if claimed is not None else []:
        log.warning("%s", note)
    if device.type == "cpu" and info.distributed:  # share the cores between the local processes
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    precision = resolve_precision(cfg.hardware.precision, device)
    _header(cfg, spec, info, device, precision)

    m = cfg.model
    expects = input_spec_for(m.network)  # the model's input convention: channel order, mean, std
    paths = spec.resolve(cfg.data.dataset, cfg.data.source)
    loaders = build_loaders(spec, paths, loader_config(cfg), expects.mean, expects.std, info.rank, info.world_size,
                            expects.channel_order)
    num_classes = len(loaders.classes)  # the classifier has as many outputs as the label dictionary classes
    if num_classes < spec.num_classes:
        log.warning("%s: the label files name %d classes, fewer than %s's %d: the classifier gets %d outputs",
                    paths.train_csv, num_classes, spec.name, spec.num_classes, num_classes)
    seed_everything(cfg.optim.random_seed)  # same on every rank: identical initial weights
    gate_options = {"gate_similarity": m.gate_similarity, "gate_temperature": m.gate_temperature} if m.gates else {}
    model = build_model(m.network, num_classes, gates=m.gates, **gate_options).to(device)
    hw = cfg.hardware
    if hw.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    o = cfg.optim
    optimizer = build_optimizer(model, o.lr_base, m.fine_tune, o.momentum, o.weight_decay, name=o.optimizer,
                                no_decay_norm_bias=o.no_decay_norm_bias)
    s = cfg.schedule
    schedule = build_schedule(s.lr_schedule, cfg.optim.lr_base, steps=s.lr_steps, factor=s.lr_factor,
                              end_epoch=s.end_epoch, warmup_epochs=s.lr_warmup_epochs)
    step = TrainStep(optimizer, make_scaler(device, precision), schedule, device, precision,
                     channels_last=hw.channels_last, accumulate=o.accumulate_grad, clip_grad_norm=o.clip_grad_norm)
    start: StartPoint = claimed.start if claimed is not None else resolve_start(m.pretrained_3d, m.resume_epoch,
                                                                                 out_dir, m.network)
    ckpt = restore(start, model, optimizer, step.scaler, schedule, network=m.network, classes=loaders.classes,
                   allow_partial=m.allow_partial, source=m.pretrained_source)
    if start.iteration:
        saved_steps = int((ckpt or {}).get("position", {}).get("plan_length", -1))
        if saved_steps != len(loaders.batch_sampler.current_plan):
            raise ValueError(f"{start.path}: saved inside an epoch of {saved_steps} steps, but this run's epochs have "
                             f"{len(loaders.batch_sampler.current_plan)} (another --batch-size, --gpus or data "
                             "set); resume with the same ones, or from a <network>_ep-XXXX.pth with --resume-epoch N")
        check_same_train_list(ckpt or {}, start.path, train_list_fingerprint(loaders.train_set.records))
    if start.mode != "resume":  # a resumed run continues the saved RNG streams instead
        seed_everything(cfg.optim.random_seed + STREAMS["process"] * info.rank)
    if info.is_main:
        check_writable(out_dir, 2 * estimate_bytes(model, 2 if o.optimizer == "adamw" else 1, o.ema_decay > 0))
    if hw.sync_bn:
        model, ignored = dist.sync_batchnorm(model, info.distributed, device)
        if ignored:
            log.warning("%s", ignored)
        else:
            log.info("--sync-bn: BatchNorm layers share their statistics over the %d processes", info.world_size)
    changed = _changed_knobs(ckpt, cfg) if start.mode == "resume" else []
    if changed:
        log.warning("%s: resumed with %s; the run continues with this command line's values", start.path,
                    ", ".join(changed))
    step.targets = TargetTransform.from_config(cfg, num_classes, info.rank)
    step.targets.check_pairs(loaders.batch_per_rank)
    if o.ema_decay > 0:  # of the bare model, before compiling and DDP (same parameters, plain keys)
        step.ema = ModelEma(model, o.ema_decay)
        log.info("%s", restore_ema(step.ema, ckpt, start.mode, start.path))
    if hw.compile:
        compile_backbone(model, hw.compile_backend)  # in place: checkpoint keys do not change
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if signals is not None:
        signals.handover()  # a signal from here on stops the epochs before their first step, with a checkpoint
    best = ((ckpt or {}).get("metrics") or {}).get("best_val_top1") if start.mode == "resume" else None
    carried = (ckpt or {}).get("position", {}).get("partial") if start.iteration else None  # the epoch's sums so far
    return Trainer(cfg, spec, model, loaders, step, out_dir, start.epoch, start.iteration, best, carried).fit()


def _finished(out_dir: Any, claimed: Any) -> dict[str, Any]:
    """The run in ``out_dir`` is already complete (`train.results.folder.finished_line`): one line, no files."""
    if claimed is not None:
        print(claimed.finished, flush=True)
    return {"results_dir": str(out_dir), "finished": claimed.finished if claimed is not None else True,
            "preempted": None, "checkpoint": None, "best_val_top1": None}


def _preempted_at_start(exc: StartupPreempted, cfg: RunConfig) -> dict[str, Any]:
    """A signal before the first training step: nothing to save; one line and the requeue exit code."""
    log.warning("%s while the run was starting (before its first step): nothing to save; exit %d to requeue, "
                "--resume-epoch auto continues from the newest checkpoint in %s", exc, REQUEUE_EXIT, cfg.results_dir())
    return {"results_dir": str(cfg.results_dir()), "preempted": str(exc), "checkpoint": None}


def _changed_knobs(ckpt: dict[str, Any] | None, cfg: RunConfig) -> list[str]:
    """The optimiser and regularisation settings this resume changes from the checkpoint's run (none when the
    checkpoint stores no configuration, or one this version no longer reads)."""
    try:
        saved = RunConfig.from_saved(ckpt or {})
    except ValueError as exc:
        log.debug("not comparing the checkpoint's configuration: %s", exc)
        return []
    return changed_fields(saved, cfg) if saved is not None else []


def main(spec: DatasetSpec, argv: Sequence[str] | None = None) -> int:
    """Script entry point: ``run`` with one-line errors (exit code 1) for bad input and stopped runs, and exit
    code ``REQUEUE_EXIT`` (75) after SIGTERM/SIGUSR1/SIGINT saved a mid-epoch checkpoint (requeue the job)."""
    try:
        summary = run(spec, argv)
    except USER_ERRORS as exc:
        if not getattr(exc, "logged", False):
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the last saved checkpoint is intact", file=sys.stderr)
        return 130
    return REQUEUE_EXIT if summary.get("preempted") else 0
