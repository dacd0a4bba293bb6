"""The demo's speed levers, each as a ratio against the demo's own setting measured in the same run.

    python -m benchmarks.bench_demo [--compile] [--out DIR]
    python -m benchmarks.bench_demo --smoke          # tiny network, clips and data set (the test suite)

Levers: a training step of srtg_r3d_18 (the engine's TrainStep, batch 32 of 8x32², 2 threads, eager,
fp32, fused SGD) against 1 thread, ``--channels-last``, torch's per-tensor SGD loop (instead of the
engine's fused update), batch 16 (per clip), a clip-length warm-up clip (16x24², per clip)
and, with ``--compile``, ``--compile`` (steady state; the compile time is reported apart); generating the
synthetic set at 32² instead of 64² (per clip); writing a checkpoint (model + SGD state) and one validation pass
(the val split is 1/3 of the train split), each against one epoch of training steps. Prints one markdown table
and writes it as ``bench_demo.md`` and ``.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.bench_gpu import Plan, step_rate
from benchmarks.common import Table, add_report_arguments, rounds, torch_threads, write_report
from data.prep.synthetic import generate
from network import create_model
from train.engine.optim import build_optimizer
from train.results.checkpoint import save_checkpoint

# the demo (train_synthetic.py): 1440 train clips = 45 steps of 32, 480 val clips; frames stored at 64², read at 32²
DEMO = Plan(("srtg_r3d_18",), (32,), 8, 32, ("fp32",), 6, 2, "inductor", 4, 64)
SMOKE = Plan(("ir_csn_50",), (32,), 4, 4, ("fp32",), 2, 1, "eager", 1, 64)
STEPS_PER_EPOCH, VAL_FRACTION = 45, 1 / 3
WARMUP_SIDE = 24  # the clip-length warm-up probed for the demo: 2x the frames at 24²


def with_threads(threads: int, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with ``torch.set_num_threads(threads)``, restoring the previous count."""
    with torch_threads(threads):
        return fn(*args, **kwargs)


def step_levers(plan: Plan, threads: int, compiled: bool, repeats: int = 3) -> tuple[list[list], float]:
    """Rows of per-clip step time against the baseline, and the baseline's seconds per step.

    Every case is measured ``repeats`` times, interleaved with the others, and its fastest round counts, so a
    burst of other load on the machine does not decide a ratio."""
    name, size, cpu = plan.models[0], plan.sizes[0], torch.device("cpu")

    def rate(threads_: int, plan_: Plan = plan, size_: int = size, **kw) -> float:
        return with_threads(threads_, step_rate, name, size_, "fp32", plan_, cpu, **kw)[0]

    cases = {"baseline": lambda: rate(threads), "1 thread": lambda: rate(1),
             "--channels-last": lambda: rate(threads, channels_last=True),
             "SGD as torch's per-tensor loop": lambda: rate(threads, fused=False),
             f"batch {plan.batch // 2}": lambda: rate(threads, replace(plan, batch=plan.batch // 2)),
             f"{2 * plan.frames}x{WARMUP_SIDE}² (a warm-up clip)":
                 lambda: rate(threads, replace(plan, frames=2 * plan.frames), WARMUP_SIDE)}
    if compiled:
        cases["--compile"] = lambda: rate(threads, compiled=True)
    def clocked(fn):
        def case() -> tuple[float, float]:
            t0 = time.perf_counter()
            return fn(), time.perf_counter() - t0
        return case

    values = rounds({label: clocked(fn) for label, fn in cases.items()}, repeats)
    best = {label: max(rate for rate, _ in v) for label, v in values.items()}
    base = best.pop("baseline")
    rows = [[f"step, threads={threads}, eager (baseline)", f"{plan.batch / base:.3f} s/step", 1.0,
             f"best of {repeats} interleaved rounds of {plan.steps} steps"]]
    for label, value in best.items():
        note = ""
        if label == "--compile":  # the first call compiles; later calls reuse the compiled code of that model only
            note = f"first call (compiling + {plan.warmup + plan.steps} steps): {values[label][0][1]:.0f} s"
        rows.append([f"step, {label}", f"{1 / value * 1000:.1f} ms/clip", base / value, note])
    return rows, plan.batch / base


def generation_lever(plan: Plan, per_class: int) -> list:
    """Seconds per clip of generating the set at half the demo's stored size, against the stored size."""
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (plan.stored, plan.stored // 2):
            t0 = time.perf_counter()
            generate(Path(tmp) / str(size), videos_per_class=per_class, size=size, workers=1)
            seconds[size] = (time.perf_counter() - t0) / (8 * per_class)
    return [f"synthetic set stored at {plan.stored // 2}² instead of {plan.stored}²",
            f"{seconds[plan.stored // 2] * 1000:.1f} ms/clip", seconds[plan.stored // 2] / seconds[plan.stored],
            f"{plan.stored}²: {seconds[plan.stored] * 1000:.1f} ms/clip"]


def epoch_costs(plan: Plan, threads: int, step_s: float) -> list[list]:
    """A checkpoint write and a validation pass, each against one epoch of training steps."""
    torch.manual_seed(0)
    model = create_model(plan.models[0], num_classes=8)
    optimizer = build_optimizer(model, 0.01)
    x = torch.randn(plan.batch, 3, plan.frames, plan.sizes[0], plan.sizes[0])
    torch.nn.functional.cross_entropy(model(x), torch.arange(plan.batch) % 8).backward()
    optimizer.step()  # creates the momentum buffers a real checkpoint holds
    epoch_s = STEPS_PER_EPOCH * step_s
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = save_checkpoint(Path(tmp) / "net_ep-0001.pth", model, 1, optimizer, network=plan.models[0])
        save_s, mb = time.perf_counter() - t0, path.stat().st_size / 1e6
    model.eval()
    with torch.no_grad():
        with_threads(threads, model, x)
        t0 = time.perf_counter()
        for _ in range(plan.warmup + 1):
            with_threads(threads, model, x)
        val_s = (time.perf_counter() - t0) / (plan.warmup + 1) * STEPS_PER_EPOCH * VAL_FRACTION
    return [["one checkpoint write", f"{save_s:.2f} s, {mb:.0f} MB", save_s / epoch_s, "against one epoch"],
            ["one validation pass", f"{val_s:.1f} s", val_s / epoch_s, "against one epoch"]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--compile", action="store_true", help="also measure --compile (about 2 minutes of compiling)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the baseline (the demo: all cores)")
    add_report_arguments(p, "tiny network, clips and data set (the test suite)")
    args = p.parse_args(argv)
    plan = SMOKE if args.smoke else DEMO
    table = Table("the demo's levers, each against the demo's setting measured in the same run",
                  ["lever", "measured", "ratio", "note"], formats=[None, None, "{:.3f}"])
    rows, step_s = step_levers(plan, args.threads, args.compile)
    rows.append(generation_lever(plan, 1 if args.smoke else 24))
    rows += epoch_costs(plan, args.threads, step_s)
    for row in rows:
        table.add(*row)
    with torch_threads(args.threads):
        write_report("bench_demo", [table], args.out, argv, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
