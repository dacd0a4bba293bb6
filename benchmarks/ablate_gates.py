"""Ablation of the SRTG temporal gate on the built-in synthetic set: every arm on one fixed step budget.

    python -m benchmarks.ablate_gates [--budget-steps 225] [--seeds 2] [--work ablation_gates] [--estimate]
    python -m benchmarks.ablate_gates --quick          # every arm for 2 steps on a tiny set, 1 seed
    python -m benchmarks.ablate_gates --smoke          # one gated arm and its warm-up arm on that set (the suite)
    python -m benchmarks.ablate_gates --init-table     # pass rate per block at initialisation, per similarity
    python -m benchmarks.ablate_gates --distances CKPT [CKPT ...]   # what the gate compares in trained networks

Arms (the earlier demo's clip: 8 frames of 32², interval 4, batch 32, lr 0.02): r3d_18; srtg_r3d_18 with gates off;
srtg_r3d_18 with gates on for each similarity of ``network.gate.SIMILARITIES``; mtnet_xs (at 34², MTNet needs
at least 33 px); then, with the similarity of the best gates-on arm (mean final val top-1), that similarity
with a warm-up (``--gates-from-epoch``: gate off for the first half of the epochs), and both at 16 frames.
Each arm is trained through ``train.engine.run.run`` with ``--random-seed`` 1..N; the data set is generated once into
``WORK/data``. The table (printed, and ``ablate_gates.md``/``.json`` in ``--out``; every run's numbers in
``WORK/ablation.json``) gives val top-1 at the end and at its best (mean ± half the range over seeds) and each
block's final val pass rate from the run's ``gates_s0000.csv``. Arms that need a training flag the CLI does not
have are listed as skipped.

Budget: 225 steps = 5 epochs of 45 steps (1440 training clips / batch 32), validated once after the last epoch.
The 22 runs took 1 h 47 min (data generation included) on a 2-core AMD EPYC about 1.9x slower than the fastest
host seen (docs/gate_study.md). A run that finished is recorded in ``OUT/runs/done.jsonl`` and not repeated
when the command is run again (e.g. after a session ended mid-way). Run
``--estimate`` first on a busy machine, which times a few steps of each kind and prints the projection.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import Table, add_report_arguments, write_report
from data.pipeline.video_transforms import normalise
from data.prep.synthetic import CLASSES, SYNTHETIC_SPEC, generate, render_clip
from data.store.atomic import atomic_write_text
from network.config import get_config
from network.gate import SIMILARITIES, gate_keep
from network.registry import create_model
from network.srtg import gate_pass_rates, gated_blocks, reset_gate_stats
from train.engine.cli import build_parser
from train.monitor.gate_report import read_gates

SRTG = "srtg_r3d_18"
FULL = {"videos_per_class": 240, "frames": 32, "size": 64, "batch": 32, "clip": 32}  # the demo (train_synthetic.py)
# The schedule of the gate study's table (docs/gate_study.md), frame interval 4 and lr 0.02, not the demo's:
# pinned here so that changing the demo's defaults cannot silently change this benchmark.
RECIPE = ["--train-frame-interval", "4", "--val-frame-interval", "4", "--lr-base", "0.02"]
# 16 training clips: 1 step per epoch; 16² clips for the ResNets keep the 13 runs short
QUICK = {"videos_per_class": 3, "frames": 24, "size": 40, "batch": 16, "clip": 16}
MTNET_SIZE = 34  # MTNet needs H, W >= 33
GATE_FLAGS = {"similarity": "--gate-similarity", "temperature": "--gate-temperature", "warmup": "--gates-from-epoch"}


@dataclass(frozen=True)
class Arm:
    """One configuration of the ablation."""

    name: str
    network: str
    gates: bool = False
    similarity: str | None = None  # None: the builders' default (no flag passed)
    warmup: bool = False
    frames: int = 8
    size: int = 32


def first_arms(clip: int = 32) -> list[Arm]:
    """The arms that do not depend on the outcome of others (``clip``: side of the ResNets' clips)."""
    gated = [Arm(f"gates {s}", SRTG, True, s, size=clip) for s in SIMILARITIES]
    return [Arm("r3d_18", "r3d_18", size=clip), Arm("gates off", SRTG, size=clip), *gated,
            Arm("mtnet_xs", "mtnet_xs", size=MTNET_SIZE)]


def best_arms(best: str, clip: int = 32) -> list[Arm]:
    """The best similarity with a warm-up, and with and without one at 16 frames."""
    base = Arm(f"gates {best}", SRTG, True, best, size=clip)
    return [replace(base, name=f"gates {best} + warm-up", warmup=True),
            replace(base, name=f"gates {best}, 16 frames", frames=16),
            replace(base, name=f"gates {best} + warm-up, 16 frames", frames=16, warmup=True)]


def missing_flags(arm: Arm, temperature: float | None) -> list[str]:
    """Training flags ``arm`` needs that ``train.engine.cli`` does not define (yet)."""
    known = build_parser(SYNTHETIC_SPEC)._option_string_actions
    needed = [GATE_FLAGS["similarity"]] if arm.similarity not in (None, "raw") else []
    needed += [GATE_FLAGS["temperature"]] if arm.gates and temperature is not None else []
    needed += [GATE_FLAGS["warmup"]] if arm.warmup else []
    return [f for f in needed if f not in known]


def argv_for(arm: Arm, seed: int, data: Path, runs: Path, epochs: int, cfg: dict, temperature: float | None,
             quick: bool) -> list[str]:
    """The ``train_synthetic.py`` command line of one run."""
    argv = ["--dataset", str(data), "--network", arm.network, "--gates", str(arm.gates), "--clip-length",
            str(arm.frames), "--clip-size", str(arm.size), "--end-epoch", str(epochs), "--random-seed", str(seed),
            "--batch-size", str(cfg["batch"]), "--lr-steps", str(max(1, round(0.8 * epochs))),
            "--save-frequency", str(epochs), "--model-dir", str(runs / f"{arm.name.replace(' ', '_')}_s{seed}"),
            "--device", "cpu", "--overwrite", "True", *RECIPE]  # an interrupted run starts again
    if arm.similarity not in (None, "raw"):
        argv += [GATE_FLAGS["similarity"], arm.similarity]
    if arm.gates and temperature is not None:
        argv += [GATE_FLAGS["temperature"], str(temperature)]
    if arm.warmup:
        argv += [GATE_FLAGS["warmup"], str(max(1, epochs // 2))]
    # validation after the last epoch only: the table reports the final val top-1 and pass rates
    argv += ["--eval-frequency", str(epochs)]
    if quick:
        argv += ["--workers", "0", "--log-interval", "1"]
    return argv


def final_pass_rates(results_dir: str | None) -> dict[str, float]:
    """Val pass rate per block at the last epoch of the run's gates CSV ({} when there is none)."""
    if not results_dir or not list(Path(results_dir).glob("gates_s*.csv")):
        return {}
    val = read_gates(results_dir).get("val", {})
    return {block: series[max(series)] for block, series in val.items()}


def _done_runs(runs: Path) -> dict[str, dict[str, Any]]:
    """Finished runs recorded in ``runs/done.jsonl`` by an earlier (interrupted) invocation, by run key."""
    path = runs / "done.jsonl"
    if not path.is_file():
        return {}
    return {rec["key"]: rec for rec in map(json.loads, path.read_text().splitlines()) if rec.get("key")}


def run_arm(arm: Arm, seeds: int, data: Path, runs: Path, epochs: int, cfg: dict, temperature: float | None,
            quick: bool, keep_checkpoints: bool) -> dict[str, Any]:
    """Train ``arm`` once per seed; its results as plain data (``skipped`` names missing CLI flags).

    Each finished run is appended to ``runs/done.jsonl``, so a re-run with the same settings skips it (a session
    can end mid-ablation). The runs' checkpoints (350 MB each for srtg_r3d_18) are deleted unless
    ``keep_checkpoints``."""
    from train.engine.run import run  # noqa: PLC0415  (the engine only for a real ablation)

    missing = missing_flags(arm, temperature)
    record: dict[str, Any] = {"arm": asdict(arm), "skipped": missing, "runs": []}
    if missing:
        print(f"[ablate] {arm.name}: skipped, train.engine.cli has no {' '.join(missing)}", flush=True)
        return record
    spec = replace(SYNTHETIC_SPEC, num_classes=len(CLASSES))
    done = _done_runs(runs)
    for seed in range(1, seeds + 1):
        argv = argv_for(arm, seed, data, runs, epochs, cfg, temperature, quick)
        key = " ".join(argv)
        if key in done:
            record["runs"].append(done[key]["run"])
            print(f"[ablate] {arm.name} seed {seed}: done earlier, val top-1 {done[key]['run']['last_val_top1']}")
            continue
        t0 = time.perf_counter()
        summary = run(spec, argv)
        record["runs"].append({"seed": seed, "last_val_top1": summary.get("last_val_top1"),
                               "best_val_top1": summary.get("best_val_top1"), "seconds": time.perf_counter() - t0,
                               "results_dir": summary.get("results_dir"),
                               "pass_rates": final_pass_rates(summary.get("results_dir"))})
        runs.mkdir(parents=True, exist_ok=True)
        with open(runs / "done.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "run": record["runs"][-1]}, default=str) + "\n")
        if not keep_checkpoints and summary.get("results_dir"):
            for path in Path(summary["results_dir"]).glob("*.pth"):
                path.unlink()
        print(f"[ablate] {arm.name} seed {seed}: val top-1 {summary.get('last_val_top1')} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return record


def _mean_spread(values: list[float | None]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (max(vals) - min(vals)) / 2


def pick_best(records: list[dict[str, Any]]) -> str:
    """The similarity of the gates-on arm with the highest mean final val top-1 (``raw`` if none ran)."""
    scored = [(_mean_spread([r["last_val_top1"] for r in rec["runs"]])[0], rec["arm"]["similarity"])
              for rec in records if rec["arm"]["gates"] and rec["runs"]]
    scored = [(score, sim) for score, sim in scored if not math.isnan(score)]
    return max(scored, key=lambda t: t[0])[1] if scored else "raw"


def table(records: list[dict[str, Any]], title: str = "") -> Table:
    """Val top-1 (mean ± half range over seeds) and final val pass rate per block, one row per arm."""
    blocks = sorted({b for rec in records for r in rec["runs"] for b in r["pass_rates"]},
                    key=lambda b: [int(p) if p.isdigit() else p for p in b.replace(".", " ").split()])
    head = ["arm", "T", "seeds", "val top-1 final", "val top-1 best", "s/run",
            *[b.removesuffix(".sar") for b in blocks]]
    out = Table(title, head, formats=[None] * 5 + ["{:.0f}"] + ["{:.2f}"] * len(blocks))
    for rec in records:
        arm = rec["arm"]
        if rec["skipped"]:
            out.add(arm["name"], arm["frames"], "–", f"skipped: no {' '.join(rec['skipped'])}",
                    *[None] * (len(head) - 4))
            continue
        runs = rec["runs"]
        last, best = (_mean_spread([r[k] for r in runs]) for k in ("last_val_top1", "best_val_top1"))
        rates = [_mean_spread([r["pass_rates"].get(b) for r in runs])[0] for b in blocks]
        out.add(arm["name"], arm["frames"], len(runs), f"{last[0]:.3f} ± {last[1]:.3f}",
                f"{best[0]:.3f} ± {best[1]:.3f}", statistics.fmean(r["seconds"] for r in runs),
                *("–" if math.isnan(v) else v for v in rates))
    return out


def ensure_data(out: Path, cfg: dict) -> Path:
    """Generate the synthetic set into ``out/data`` once (its val CSV, written last, marks it complete)."""
    data = out / "data"
    if not (data / "labels" / SYNTHETIC_SPEC.val_csv).is_file():
        generate(data, videos_per_class=cfg["videos_per_class"], frames=cfg["frames"], size=cfg["size"], workers=2)
    return data


def synthetic_clips(n: int, frames: int, size: int, interval: int = 4) -> torch.Tensor:
    """``(n, 3, frames, size, size)`` normalised synthetic clips, one class after another (every 4th frame)."""
    cfg = get_config(SRTG)
    clips = []
    for i in range(n):
        raw = render_clip(CLASSES[i % len(CLASSES)], np.random.default_rng([7, i]), frames * interval, size)
        clips.append(normalise(torch.from_numpy(np.ascontiguousarray(raw[::interval])).permute(0, 3, 1, 2),
                               cfg["mean"], cfg["std"]))
    return torch.stack(clips)


@torch.no_grad()
def init_table(frames: int = 8, size: int = 32, clips: int = 8) -> Table:
    """Pass rate per block of a freshly initialised gated srtg_r3d_18, per similarity and input."""
    inputs = {"random": torch.randn(clips, 3, frames, size, size, generator=torch.Generator().manual_seed(0)),
              "synthetic": synthetic_clips(clips, frames, size)}
    out: Table | None = None
    for name in SIMILARITIES:
        torch.manual_seed(0)
        model = create_model(SRTG, num_classes=len(CLASSES), gates=True, gate_similarity=name).eval()
        for what, x in inputs.items():
            reset_gate_stats(model)
            model(x)
            rates = gate_pass_rates(model)
            if out is None:
                out = Table(f"srtg_r3d_18 at initialisation, {frames}x{size}² clips",
                            ["similarity", "clips", *[b.removesuffix(".sar") for b in rates]],
                            formats=[None, None, *["{:.2f}"] * len(rates)])
            out.add(name, f"{clips} {what}", *rates.values())
    return out


def _median_sq_distances(u: torch.Tensor, v: torch.Tensor, off_diagonal: bool) -> float:
    """Median over samples and frame pairs (i, j) of ||u_i - v_j||² for ``(B, C, T)`` sequences."""
    d = torch.cdist(u.transpose(1, 2), v.transpose(1, 2)) ** 2  # (B, T, T)
    if off_diagonal:
        t = d.shape[-1]
        if t < 2:
            return float("nan")
        d = d[:, ~torch.eye(t, dtype=torch.bool)]
    return float(d.median())


@torch.no_grad()
def distance_table(checkpoints: list[Path], clips: int = 32) -> Table:
    """Why a trained gate passes or not. Per gated SR block of each checkpoint, on ``clips`` synthetic
    clips at the checkpoint's clip size: T, the median squared distance between frames of the pooled features
    ``s``, between frames of the recurrent features ``r``, and across (``s_i`` to ``r_j``), and the pass rate
    with the checkpoint's similarity."""
    from tools.visualise_gates import load_gated_model  # noqa: PLC0415

    out = Table("what the gate compares", ["checkpoint", "similarity", "block", "T", "‖s_i−s_j‖²", "‖r_i−r_j‖²",
                                            "‖s_i−r_j‖²", "pass rate"],
                formats=[None, None, None, None, "{:.3g}", "{:.3g}", "{:.3g}", "{:.2f}"])
    for path in checkpoints:
        model, _, config = load_gated_model(path, None, None, None)
        frames, size = (config.data.clip_length, config.data.clip_size) if config else (8, 32)
        seen: dict[str, tuple[torch.Tensor, torch.Tensor, torch.nn.Module]] = {}

        def hook(name: str, block: torch.nn.Module):
            def record(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                s, r = block.squeeze_recur(inputs[0])
                seen[name] = (s.float(), r.float(), block)  # noqa: B023  (each hook fills this call's dict)
            return block.register_forward_pre_hook(record)

        handles = [hook(name, block) for name, block in gated_blocks(model).items()]
        try:
            model(synthetic_clips(clips, frames, size))
        finally:
            for h in handles:
                h.remove()
        for name, (s, r, block) in seen.items():
            rate = float(gate_keep(s, r, block.gate_similarity, block.gate_temperature).float().mean())
            cells = [_median_sq_distances(s, s, True), _median_sq_distances(r, r, True),
                     _median_sq_distances(s, r, False)]
            out.add(path.stem, block.gate_similarity, name.removesuffix(".sar"), s.shape[-1],
                    *("–" if math.isnan(c) else c for c in cells), rate)
    return out


def estimate(arms: list[Arm], seeds: int, budget: int, cfg: dict, steps: int = 2) -> float:
    """Seconds the ablation would take here: a few timed training steps per (network, T, size), × budget."""
    per_step: dict[tuple, float] = {}
    for arm in arms:
        key = (arm.network, arm.frames, arm.size)
        if key in per_step:
            continue
        model = create_model(arm.network, num_classes=len(CLASSES), **({"gates": True} if arm.gates else {}))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x, y = torch.randn(cfg["batch"], 3, arm.frames, arm.size, arm.size), torch.arange(cfg["batch"]) % 8
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        per_step[key] = statistics.median(times[1:])
        print(f"[ablate] {key}: {per_step[key]:.2f} s/step", flush=True)
    # validation (1/3 of the training clips, forward only) and start-up add about 15%
    return 1.15 * seeds * budget * sum(per_step[(a.network, a.frames, a.size)] for a in arms)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="every arm for 2 steps on a tiny set, 1 seed")
    add_report_arguments(p, "--quick for one gated arm and the warm-up arm of its similarity (the test suite)")
    p.add_argument("--budget-steps", type=int, default=225, help="training steps per run (rounded up to epochs)")
    p.add_argument("--seeds", type=int, default=2, help="runs per arm (seeds 1..N)")
    p.add_argument("--temperature", type=float, default=None, help="--gate-temperature of the gated arms")
    p.add_argument("--work", type=Path, default=Path("ablation_gates"),
                   help="folder of the data set, the runs and every run's numbers (ablation.json)")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each run's .pth (default: delete)")
    p.add_argument("--estimate", action="store_true", help="time a few steps per arm kind and print the total")
    p.add_argument("--init-table", action="store_true", help="print pass rates at initialisation and exit")
    p.add_argument("--distances", type=Path, nargs="+", metavar="CKPT", default=None,
                   help="print, per SR block of these gated checkpoints, the distances the gate compares, and exit")
    args = p.parse_args(argv)
    if args.distances:
        write_report("ablate_gates_distances", [distance_table(args.distances)], args.out, argv)
        return 0
    if args.init_table:
        write_report("ablate_gates_init", [init_table(frames) for frames in (8, 16)], args.out, argv)
        return 0
    quick = args.quick or args.smoke
    cfg = QUICK if quick else FULL
    seeds = 1 if quick else args.seeds
    n_train = len(CLASSES) * (cfg["videos_per_class"] - round(0.25 * cfg["videos_per_class"]))
    steps_per_epoch = math.ceil(n_train / cfg["batch"])
    epochs = 2 if quick else max(2, math.ceil(args.budget_steps / steps_per_epoch))
    if args.estimate:
        arms = first_arms(cfg["clip"]) + best_arms("raw", cfg["clip"])
        total = estimate(arms, seeds, epochs * steps_per_epoch, cfg)
        print(f"[ablate] {len(arms)} arms x {seeds} seeds x {epochs * steps_per_epoch} steps: about "
              f"{total / 3600:.1f} h here")
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.work, cfg)
    print(f"[ablate] {epochs} epochs x {steps_per_epoch} steps per run, {seeds} seed(s)", flush=True)
    run = dict(seeds=seeds, data=data, runs=args.work / "runs", epochs=epochs, cfg=cfg,
               temperature=args.temperature, quick=quick, keep_checkpoints=args.keep_checkpoints)
    first = first_arms(cfg["clip"])
    if args.smoke:  # every code path (gates CSV, pass rates, best pick, warm-up flag) in two short runs
        first = [arm for arm in first if arm.gates][:1]
    records = [run_arm(arm, **run) for arm in first]
    best = pick_best(records)
    records += [run_arm(arm, **run) for arm in best_arms(best, cfg["clip"])[:1 if args.smoke else None]]
    atomic_write_text(args.work / "ablation.json", json.dumps(records, indent=1, default=str) + "\n")
    write_report("ablate_gates", [table(records, f"synthetic set, {epochs} epochs x {steps_per_epoch} steps (batch "
                                                 f"{cfg['batch']}), seeds 1..{seeds}; best similarity: {best}")],
                 args.out, argv, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
