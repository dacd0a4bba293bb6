"""One GPU benchmark in one go (about 5 minutes on one GPU): training-step speed, memory, loader speed, GPU use.

    python -m benchmarks.bench_gpu [--out DIR] [--budget-s 280]     # on a CUDA machine
    python -m benchmarks.bench_gpu --smoke                          # the same code on CPU, in seconds

It prints three markdown tables (and writes them as ``bench_gpu.md`` and ``.json`` into ``--out``):
1. training-step clips/s and peak memory of r3d_50, srtg_r3d_50, r2plus1d_50, srtg_r2plus1d_50 and mtnet_m at
   16×224² and 16×112² in fp32 / fp16 / bf16, then with ``--channels-last`` (fp16) and with ``--compile``
   (fp16, 16×112²) — the engine's own `TrainStep`, so it measures what training does;
2. loader clips/s from SQLite frames: CPU decoding in N DataLoader workers against deferred decoding on the GPU
   (`VideoIter(decode='deferred')` + `data.pipeline.device_batches.DeviceBatches`, the ``--decode gpu`` path of
   training);
3. the GPU's busy fraction in a short training run from SQLite frames (step compute time over wall time):
   does the loader keep up?
Rows that do not fit in ``--budget-s`` are listed as skipped. Ratios are against the fp32 row of the same model
and size, measured in the same run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import Table, add_report_arguments, sync, write_report
from data.catalog.labels import load_records
from data.pipeline.device_batches import DeviceBatches
from data.pipeline.video_iterator import VideoIter, collate_deferred
from data.pipeline.video_sampler import RandomSampling
from data.pipeline.video_transforms import build_transform
from data.prep.synthetic import generate
from network import create_model
from network.compile import compile_backbone
from network.config import get_config
from train.engine.loop import TrainStep, make_scaler
from train.engine.lr_scheduler import MultiStep
from train.engine.optim import build_optimizer


@dataclass(frozen=True)
class Plan:
    """What to measure: the full GPU plan or the CPU smoke plan."""

    models: tuple[str, ...]
    sizes: tuple[int, ...]
    frames: int
    batch: int
    precisions: tuple[str, ...]
    steps: int
    warmup: int
    compile_backend: str
    videos: int
    stored: int
    compiled: int = 0  # how many of ``models`` get a --compile row (0: all)
    compile_s: float = 0.0  # a --compile row starts only with this much of the budget left (it compiles first)


GPU = Plan(("r3d_50", "srtg_r3d_50", "r2plus1d_50", "srtg_r2plus1d_50", "mtnet_m"), (224, 112), 16, 8,
           ("fp32", "fp16", "bf16"), 5, 2, "inductor", 32, 256, compile_s=120.0)
# the smallest networks of the zoo (2.9 M parameters) on 4x32² clips: every code path in seconds on a CPU; one
# compiled model (tracing the SR blocks takes tens of seconds on a CPU; tests/network/test_compile.py covers them)
SMOKE = Plan(("ir_csn_50", "srtg_ir_csn_50"), (32,), 4, 4, ("fp32",), 1, 1, "eager", 4, 64, compiled=1)


def step_rate(name: str, size: int, precision: str, plan: Plan, device: torch.device, channels_last: bool = False,
              compiled: bool = False, fused: bool = True) -> tuple[float, float | None]:
    """Training clips/s (the engine's TrainStep) and the peak memory in GB (CUDA only); ``fused=False``: the
    SGD update as torch's per-tensor loop instead of the engine's fused kernel."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=400).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    if compiled:
        compile_backbone(model, plan.compile_backend)
    optimizer = build_optimizer(model, 0.01)
    if not fused:
        for group in optimizer.param_groups:
            group["fused"] = None
    step = TrainStep(optimizer, make_scaler(device, precision), MultiStep(0.01, [100], 0.1),
                     device, precision, channels_last=channels_last)
    data = torch.randn(plan.batch, 3, plan.frames, size, size, device=device)
    target = torch.randint(0, 400, (plan.batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(plan.warmup + plan.steps):
        if i == plan.warmup:
            sync(device)
            t0 = time.perf_counter()
        step.set_lr(0.0)
        step(model, data, target, where=f"{name} step {i}")
    sync(device)
    rate = plan.batch * plan.steps / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    return rate, peak


def step_rows(plan: Plan, device: torch.device, deadline: float) -> Table:
    """Table 1: every (model, size, precision), then channels-last and compiled variants."""
    cases = [(m, s, p, False, False) for m in plan.models for s in plan.sizes for p in plan.precisions]
    fast = "fp16" if "fp16" in plan.precisions else plan.precisions[-1]
    cases += [(m, s, fast, True, False) for m in plan.models for s in plan.sizes]
    cases += [(m, plan.sizes[-1], fast, False, True) for m in plan.models[:plan.compiled or None]]
    table = Table("training steps (the engine's TrainStep)",
                  ["model", "clip", "precision", "channels-last", "compile", "clips/s", "vs fp32", "peak GB"],
                  formats=[None, None, None, None, None, "{:.1f}", "{:.2f}", "{:.2f}"])
    base = {}
    for model, size, precision, cl, comp in cases:
        label = [model, f"{plan.frames}×{size}²", precision, "yes" if cl else "", "yes" if comp else ""]
        if time.perf_counter() > deadline - (plan.compile_s if comp else 0.0):
            table.add(*label, "skipped (time budget)", None, None)
            continue
        rate, peak = step_rate(model, size, precision, plan, device, cl, comp)
        if precision == "fp32" and not cl and not comp:
            base[(model, size)] = rate
        table.add(*label, rate, rate / base[(model, size)] if (model, size) in base else None, peak)
    return table


def _dataset(plan: Plan, root: Path) -> list:
    paths = generate(root, num_classes=4, videos_per_class=max(1, plan.videos // 4), frames=plan.frames * 2,
                     size=plan.stored, val_fraction=0.0, workers=2)
    records, _ = load_records(paths.train_csv, paths.jpg_dir, False)
    return records


def loader_rows(plan: Plan, device: torch.device, records: list, workers: int) -> Table:
    """Table 2: clips/s of CPU decoding in ``workers`` workers against deferred decoding on ``device``."""
    norm = get_config("r3d_50")
    size = (plan.frames, plan.sizes[-1], plan.sizes[-1])
    transform = build_transform("small", True, norm["mean"], norm["std"], crop_size=plan.sizes[-1])
    table = Table(f"loader from SQLite frames, {plan.frames}×{plan.sizes[-1]}² clips, batch {plan.batch}",
                  ["loader", "clips/s"], formats=[None, "{:.1f}"])
    for mode in ("frames", "deferred"):
        data = VideoIter(records, size, RandomSampling(plan.frames, 2), transform, decode=mode)
        loader = torch.utils.data.DataLoader(data, batch_size=plan.batch, num_workers=workers, shuffle=False,
                                             collate_fn=collate_deferred if mode == "deferred" else None)
        to_device = DeviceBatches(device, data if mode == "deferred" else None)
        sync(device)
        t0, clips = time.perf_counter(), 0
        for batch in loader:
            clips += to_device(batch)[0].shape[0]
        sync(device)
        where = f"CPU decode, {workers} workers" if mode == "frames" else f"deferred, decode on {device.type}"
        table.add(where, clips / (time.perf_counter() - t0))
    return table


def busy_fraction(plan: Plan, device: torch.device, records: list, workers: int) -> float:
    """Table 3: step compute time over wall time of a short r3d training run fed from SQLite frames."""
    norm = get_config(plan.models[0])
    size = (plan.frames, plan.sizes[-1], plan.sizes[-1])
    transform = build_transform("small", True, norm["mean"], norm["std"], crop_size=plan.sizes[-1])
    data = VideoIter(records, size, RandomSampling(plan.frames, 2), transform)
    loader = torch.utils.data.DataLoader(data, batch_size=plan.batch, num_workers=workers, shuffle=True)
    model = create_model(plan.models[0], num_classes=400).to(device)
    precision = "fp16" if device.type == "cuda" else "fp32"
    step = TrainStep(build_optimizer(model, 0.01), make_scaler(device, precision), MultiStep(0.01, [100], 0.1),
                     device, precision, sync_timings=True)  # step.timings: this step's own forward, backward
    busy, began = 0.0, time.perf_counter()
    for clips, labels in loader:
        clips, labels = clips.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        step.set_lr(0.0)
        step(model, clips, labels, where="busy run")
        busy += sum(step.timings)
    return busy / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers for the loader rows")
    p.add_argument("--budget-s", type=float, default=280.0, help="stop adding step rows after this many seconds")
    add_report_arguments(p, "tiny models and clips on CPU (the test suite runs this)")
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("error: no CUDA device is visible; run on a GPU machine, or pass --smoke for the CPU check",
              file=sys.stderr)
        return 1
    plan, device = (SMOKE, torch.device("cpu")) if args.smoke else (GPU, torch.device("cuda"))
    workers = 0 if args.smoke else args.workers
    began = time.perf_counter()
    tables = [step_rows(plan, device, began + args.budget_s)]
    if not args.smoke:  # the step table is kept even if the loader rows do not finish
        write_report("bench_gpu", tables, args.out, argv, args.smoke, device, echo=False)
    with tempfile.TemporaryDirectory() as tmp:
        records = _dataset(plan, Path(tmp))
        tables.append(loader_rows(plan, device, records, workers))
        busy = Table("GPU busy fraction (step compute time over wall time)", ["run", "busy fraction"],
                     formats=[None, "{:.2f}"])
        busy.add(f"{plan.models[0]} from SQLite frames, {workers} workers",
                 busy_fraction(plan, device, records, workers))
        tables.append(busy)
    write_report("bench_gpu", tables, args.out, argv, args.smoke, device,
                 notes=[f"total {time.perf_counter() - began:.0f} s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
