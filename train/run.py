"""The one training entry point behind every ``train_<dataset>.py``: ``run(spec, argv)``.

Flow (the original's ``train_model`` + ``model.fit``, spec §4.2-4.3): parse → start processes (torchrun, or
``--gpus N`` spawns N local ones) → per process: logging (rank 0), device, seeds, data, model, optimiser,
lr schedule, AMP scaler → ``resolve_start`` → epochs of train / save / validate → CSVs, checkpoints, plot.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.multiprocessing as mp
import torch.nn as nn

from data.loaders import LoaderConfig, build_loaders
from data.multigrid import lr_scale
from data.spec import DatasetSpec
from network.config import get_config
from network.registry import create_model
from train import distributed as dist
from train.callback import default_callbacks
from train.checkpoint import ResultsCsv, checkpoint_path, resolve_start, restore, save_checkpoint
from train.cli import log_file, parse_args, results_dir, task_name
from train.logs import close_logging, setup_logging
from train.loop import EpochResult, NonFiniteLossError, evaluate, make_scaler, resolve_precision, train_one_epoch
from train.lr_scheduler import MultiFactorScheduler
from train.optim import build_optimizer

log = logging.getLogger(__name__)

# Bad input or a stopped run: one line, no traceback (unless --debug-mode), exit code 1.
USER_ERRORS = (FileNotFoundError, ValueError, NonFiniteLossError)
# curves.png is redrawn after an epoch when this many seconds passed since the last drawing, and at the end.
PLOT_EVERY_S = 60.0


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``--device``: CUDA (device ``local_rank``) when asked or, with 'auto', when available; else CPU."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: no CUDA device is visible; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def num_processes(args: argparse.Namespace, device_type: str) -> int:
    """Processes to start for ``--gpus``: its count, else every visible GPU (CUDA) or 1 (CPU)."""
    if args.gpus is not None:
        if device_type == "cuda" and args.gpu_ids is None and args.gpus > torch.cuda.device_count():
            raise RuntimeError(f"--gpus {args.gpus}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return args.gpus
    return torch.cuda.device_count() if device_type == "cuda" else 1


def build_model(args: argparse.Namespace, num_classes: int) -> nn.Module:
    """``create_model(--network, num_classes)``; ``--gates True`` is passed to the srtg_* builders."""
    extra = {"gates": True} if args.gates else {}
    try:
        return create_model(args.network, num_classes=num_classes, **extra)
    except TypeError as exc:
        if args.gates:
            raise ValueError(f"--gates True needs an srtg_* network, not '{args.network}' ({exc})") from exc
        raise


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run(spec: DatasetSpec, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train on ``spec`` with the command line ``argv`` (default ``sys.argv[1:]``); returns rank 0's summary.

    Under torchrun (``RANK``/``WORLD_SIZE`` set) this process is one rank. Otherwise ``--gpus N`` with N > 1
    spawns N local processes (NCCL on GPUs, gloo on CPU) and waits for them.
    """
    args = parse_args(spec, argv)
    if spec.variants:
        spec = spec.with_variant(args.variant)
    if dist.launched_by_torchrun():
        if args.gpus is not None and args.gpus != dist.env_info().world_size:
            log.warning("--gpus %d ignored: torchrun started %d processes", args.gpus, dist.env_info().world_size)
        return _process(spec, args)
    if args.gpu_ids is not None:  # the original's device list; must be set before CUDA is first queried
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in args.gpu_ids)
    device_type = pick_device(args.device).type
    nprocs = num_processes(args, device_type)
    if nprocs <= 1:
        return _process(spec, args)
    queue = mp.get_context("spawn").SimpleQueue()
    dist.spawn(_spawned, nprocs, args=(_spec_fields(spec), args, queue))
    return queue.get() if not queue.empty() else {}


def _spec_fields(spec: DatasetSpec) -> dict[str, Any]:
    """``spec`` as plain values: its read-only mappings (``MappingProxyType``) cannot be pickled to children."""
    return {f.name: dict(v) if isinstance(v := getattr(spec, f.name), Mapping) else v for f in fields(spec)}


def _spawned(spec_fields: dict[str, Any], args: argparse.Namespace, queue: Any) -> None:
    summary = _process(DatasetSpec(**spec_fields), args)
    if dist.env_info().is_main:
        queue.put(summary)


def _process(spec: DatasetSpec, args: argparse.Namespace) -> dict[str, Any]:
    info = dist.env_info()
    device = pick_device(args.device, info.local_rank)
    dist.init_process_group(info, device)
    try:
        return train(spec, args, info, device)
    except USER_ERRORS as exc:
        log.error("%s", exc, exc_info=bool(args.debug_mode))
        exc.logged = True  # main() does not print it a second time
        raise
    finally:
        dist.destroy_process_group()
        close_logging()


def _header(args: argparse.Namespace, spec: DatasetSpec, info: dist.DistInfo, device: torch.device,
            precision: str) -> None:
    log.info("Using pytorch %s (%s)", torch.__version__, os.path.dirname(torch.__file__))
    log.info("Start training with args:\n%s", json.dumps(vars(args), sort_keys=True, indent=4, default=str))
    log.info("Task '%s' on %s (%d classes); device %s, %d process(es), precision %s; can use cuda: %s",
             task_name(args), spec.name, spec.num_classes, device, info.world_size, precision,
             torch.cuda.is_available())


def train(spec: DatasetSpec, args: argparse.Namespace, info: dist.DistInfo, device: torch.device) -> dict[str, Any]:
    """Everything one process does; returns the run summary (meaningful on rank 0)."""
    out_dir = results_dir(args, spec)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(log_file(args, spec), args.debug_mode, info.rank)
    if device.type == "cpu" and info.distributed:  # share the cores between the local processes
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    precision = resolve_precision(args.precision, device)
    _header(args, spec, info, device, precision)
    seed_everything(args.random_seed)  # same on every rank: identical initial weights

    paths = spec.resolve(args.dataset)
    model = build_model(args, spec.num_classes).to(device)
    norm = get_config(args.network)
    cfg = LoaderConfig(clip_length=args.clip_length, clip_size=args.clip_size, batch_size=args.batch_size,
                       train_frame_interval=args.train_frame_interval, val_frame_interval=args.val_frame_interval,
                       long_cycles=args.long_cycles, short_cycles=args.short_cycles, workers=args.workers,
                       seed=args.random_seed, val_clip_length=args.val_clip_length, val_clip_size=args.val_clip_size)
    loaders = build_loaders(spec, paths, cfg, norm["mean"], norm["std"], info.rank, info.world_size)
    optimizer = build_optimizer(model, args.lr_base, args.fine_tune)
    scaler = make_scaler(device, precision)
    iters = len(loaders.batch_sampler)
    scheduler = MultiFactorScheduler(args.lr_base, args.lr_steps, args.lr_factor, iters)
    start = resolve_start(args, out_dir, args.network)
    ckpt = restore(start, model, optimizer, scaler, scheduler)
    if start.mode == "resume" and not (ckpt or {}).get("scheduler"):
        scheduler.load_state_dict({"step_counter": start.epoch * iters})  # original checkpoints: no schedule
    if start.mode != "resume":  # a resumed run continues the saved RNG streams instead
        seed_everything(args.random_seed + 1000 * info.rank)
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    _log_plan(loaders.batch_sampler.current_plan, info.world_size)
    return fit(spec, args, model, loaders, optimizer, scaler, scheduler, device, precision, start.epoch, out_dir)


def _log_plan(plan: Sequence[Any], world_size: int) -> None:
    shapes: dict[tuple, int] = {}
    for shape in plan:
        key = (shape[0] * world_size, shape[1], shape[2])
        shapes[key] = shapes.get(key, 0) + 1
    text = ", ".join(f"{n}x(B={b}, T={t}, S={s})" for (b, t, s), n in shapes.items())
    log.info("Epoch plan: %d iterations: %s", len(plan), text)


def _summary_line(phase: str, epoch: int, r: EpochResult) -> str:
    return (f"Epoch [{epoch}]  ({phase})  average top-1 acc: {r.top1:.5f}   average top-5 acc: {r.top5:.5f}   "
            f"average loss: {r.loss:.5f}   ({r.samples} clips, {r.skipped} skipped clips)")


def _due(completed: int, every: float, last: int) -> bool:
    return completed == last or completed % max(1, int(every)) == 0


def fit(spec: DatasetSpec, args: argparse.Namespace, model: nn.Module, loaders: Any, optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler, scheduler: MultiFactorScheduler, device: torch.device, precision: str,
        start_epoch: int, out_dir: Path) -> dict[str, Any]:
    """Epochs ``start_epoch+1 .. --end-epoch``: train, validate (every ``--eval-frequency``), save (every
    ``--save-frequency`` and after the last epoch, after validation so the saved RNG state is the next epoch's),
    CSV rows and the plot (at most once a minute, and at the end). Only rank 0 writes."""
    rank0 = dist.is_main()
    criterion = nn.CrossEntropyLoss()
    callbacks = default_callbacks()
    train_csv = ResultsCsv(out_dir / f"train_results_s{start_epoch:04d}.csv") if rank0 else None
    val_csv = ResultsCsv(out_dir / f"val_results_s{start_epoch:04d}.csv") if rank0 else None
    board = _tensorboard(out_dir) if (rank0 and args.tensorboard) else None
    summary: dict[str, Any] = {"results_dir": str(out_dir), "start_epoch": start_epoch, "end_epoch": args.end_epoch,
                               "log_file": str(log_file(args, spec)), "best_val_top1": None, "last_val_top1": None,
                               "last_train_top1": None, "checkpoint": None, "nonfinite_steps": 0, "history": []}
    began = last_plot = time.perf_counter()
    try:
        for epoch in range(start_epoch, args.end_epoch):
            loaders.set_epoch(epoch)
            t0 = time.perf_counter()
            tr = train_one_epoch(model, loaders.train, optimizer, scaler, scheduler, criterion, device, precision,
                                 epoch, plan=loaders.batch_sampler.current_plan, lr_scale=lr_scale,
                                 callbacks=callbacks, log_interval=args.log_interval)
            done = epoch + 1
            elapsed = time.perf_counter() - t0
            log.info("Epoch [%d]   time cost: %.2f sec (%.2f h)", epoch, elapsed, elapsed / 3600)
            log.info(_summary_line("train", epoch, tr))
            summary["nonfinite_steps"] += tr.nonfinite_steps
            summary["last_train_top1"] = tr.top1
            record: dict[str, Any] = {"epoch": done, "train": tr.as_dict()}
            if rank0:
                train_csv.write(tr.as_row(done))
            if _due(done, args.eval_frequency, args.end_epoch):
                va = evaluate(model, loaders.val, criterion, device, precision, epoch, callbacks=callbacks,
                              log_interval=args.log_interval)
                va.lr = tr.lr
                log.info(_summary_line("val", epoch, va))
                if rank0:
                    val_csv.write(va.as_row(done))
                record["val"] = va.as_dict()
                summary["last_val_top1"] = va.top1
                if not math.isnan(va.top1):
                    summary["best_val_top1"] = max(va.top1, summary["best_val_top1"] or 0.0)
                if board:
                    board.log_scalars(done, _scalars(va), prefix="val")
            if board:
                board.log_scalars(done, _scalars(tr), prefix="train")
            if _due(done, args.save_frequency, args.end_epoch) and rank0:
                path = checkpoint_path(out_dir, args.network, done)
                save_checkpoint(path, model, done, optimizer, scaler, scheduler, network=args.network,
                                classes=loaders.classes, args=vars(args))
                summary["checkpoint"] = str(path)
            dist.barrier()
            summary["history"].append(record)
            if rank0 and (done == args.end_epoch or time.perf_counter() - last_plot >= PLOT_EVERY_S):
                summary["plot"] = _plot(out_dir)
                last_plot = time.perf_counter()
    finally:
        for f in (train_csv, val_csv):
            if f is not None:
                f.close()
        if board:
            board.close()
    summary["seconds"] = time.perf_counter() - began
    summary["train_csv"] = str(out_dir / f"train_results_s{start_epoch:04d}.csv")
    summary["val_csv"] = str(out_dir / f"val_results_s{start_epoch:04d}.csv")
    log.info("Training finished in %.1f s: best val top-1 %s, last %s; results in %s", summary["seconds"],
             summary["best_val_top1"], summary["last_val_top1"], out_dir)
    return summary


def _scalars(r: EpochResult) -> dict[str, float | None]:
    return {"loss": r.loss, "top1": r.top1, "top5": r.top5, "lr": r.lr, "skipped": r.skipped}


def _tensorboard(out_dir: Path) -> Any:
    from train.tensorboard import TensorboardLogger  # owned by the evaluation helper

    return TensorboardLogger(out_dir / "tensorboard")


def _plot(out_dir: Path) -> str | None:
    """``curves.png`` through ``train.plotting.plot_results``."""
    from train.plotting import plot_results

    return str(plot_results(out_dir))


def main(spec: DatasetSpec, argv: Sequence[str] | None = None) -> int:
    """Script entry point: ``run`` with one-line errors (exit code 1) for bad input and stopped runs."""
    try:
        run(spec, argv)
    except USER_ERRORS as exc:
        if not getattr(exc, "logged", False):
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the last saved checkpoint is intact", file=sys.stderr)
        return 130
    return 0
