"""benchmarks/ablate_gates.py: the table and arm logic on plain numbers, and --quick end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import ablate_gates
from data.prep.synthetic import SYNTHETIC_SPEC
from train.engine.cli import build_parser


def test_the_cli_has_every_gate_flag() -> None:
    flags = build_parser(SYNTHETIC_SPEC)._option_string_actions
    assert all(f in flags for f in ablate_gates.GATE_FLAGS.values())


def _record(name: str, similarity: str | None, finals: list[float], rates: dict[str, float]) -> dict:
    arm = ablate_gates.Arm(name, ablate_gates.SRTG, similarity is not None, similarity)
    runs = [{"seed": i + 1, "last_val_top1": v, "best_val_top1": v + 0.1, "seconds": 10.0, "pass_rates": rates}
            for i, v in enumerate(finals)]
    return {"arm": ablate_gates.asdict(arm), "skipped": [], "runs": runs}


def test_best_similarity_and_table_cells() -> None:
    records = [_record("gates off", None, [0.9, 0.9], {}),
               _record("gates raw", "raw", [0.5, 0.7], {"layer1.0.sar": 0.0, "layer10.1.sar": 1.0}),
               _record("gates tstd", "tstd", [0.8, 0.6], {"layer1.0.sar": 0.5}),
               {"arm": ablate_gates.asdict(ablate_gates.Arm("gates recal", "srtg_r3d_18", True, "recal")),
                "skipped": ["--gate-similarity"], "runs": []}]
    assert ablate_gates.pick_best(records) == "tstd"  # 0.70 mean beats 0.60; 'gates off' is not a candidate
    lines = ablate_gates.table(records).markdown().splitlines()
    assert lines[0].endswith("| layer1.0 | layer10.1 |")  # numeric block order
    assert lines[3] == "| gates raw | 8 | 2 | 0.600 ± 0.100 | 0.700 ± 0.100 | 10 | 0.00 | 1.00 |"
    assert lines[4].endswith("| 0.50 | – |") and "skipped: no --gate-similarity" in lines[5]
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_command_lines_carry_only_the_flags_an_arm_needs(tmp_path: Path) -> None:
    cfg = ablate_gates.FULL
    plain = ablate_gates.argv_for(ablate_gates.Arm("r3d_18", "r3d_18"), 2, tmp_path, tmp_path, 7, cfg, None, False)
    assert plain[plain.index("--random-seed") + 1] == "2" and "--gate-similarity" not in plain
    # the published schedule, whatever the demo's defaults are now
    assert [plain[plain.index(f) + 1] for f in ("--train-frame-interval", "--val-frame-interval", "--lr-base")] == \
        ["4", "4", "0.02"]
    warm = ablate_gates.best_arms("tstd")[0]
    argv = ablate_gates.argv_for(warm, 1, tmp_path, tmp_path, 7, cfg, 0.5, False)
    assert argv[argv.index("--gate-similarity") + 1] == "tstd" and argv[argv.index("--gates-from-epoch") + 1] == "3"
    assert argv[argv.index("--gate-temperature") + 1] == "0.5" and argv[argv.index("--gates") + 1] == "True"
    assert [a.frames for a in ablate_gates.best_arms("tstd")] == [8, 16, 16]


@pytest.mark.slow
def test_smoke_runs_a_gated_arm_and_its_warmup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work, out = tmp_path / "work", tmp_path / "results"
    assert ablate_gates.main(["--smoke", "--work", str(work), "--out", str(out)]) == 0
    records = json.loads((work / "ablation.json").read_text())
    assert [r["arm"]["name"] for r in records] == ["gates raw", "gates raw + warm-up"]
    assert all(not r["skipped"] and 0.0 <= r["runs"][0]["last_val_top1"] <= 1.0 for r in records)
    assert all(r["runs"][0]["pass_rates"] for r in records)  # from each run's gates CSV
    assert list(work.glob("runs/*/*/gates.png")) and not list(work.glob("runs/*/*/*.pth"))  # checkpoints deleted
    report = json.loads((out / "ablate_gates-smoke.json").read_text())
    assert [row["arm"] for row in report["tables"][0]["rows"]] == ["gates raw", "gates raw + warm-up"]
    assert "| gates raw | 8 | 1 |" in (out / "ablate_gates-smoke.md").read_text()
    # a second invocation (an interrupted session run again) reuses every finished run instead of training
    import train.engine.run

    monkeypatch.setattr(train.engine.run, "run", lambda *a, **k: pytest.fail("a finished run was trained again"))
    arm = next(a for a in ablate_gates.first_arms(ablate_gates.QUICK["clip"]) if a.gates)
    again = ablate_gates.run_arm(arm, seeds=1, data=work / "data", runs=work / "runs", epochs=2,
                                 cfg=ablate_gates.QUICK, temperature=None, quick=True, keep_checkpoints=False)
    assert again["runs"] == records[0]["runs"]


def test_quick_plans_every_arm() -> None:
    names = [a.name for a in ablate_gates.first_arms(16) + ablate_gates.best_arms("raw", 16)]
    assert len(names) == 11 and names[0] == "r3d_18" and names[-1] == "gates raw + warm-up, 16 frames"
    assert {"gates off", "mtnet_xs", *(f"gates {s}" for s in ablate_gates.SIMILARITIES)} <= set(names)


@pytest.mark.slow
def test_distance_table_of_a_gated_checkpoint(tmp_path: Path) -> None:
    import torch

    from network.registry import create_model
    from train.results.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model(ablate_gates.SRTG, num_classes=8, gates=True)
    path = save_checkpoint(tmp_path / "srtg_r3d_18_ep-0001.pth", model, 1, network=ablate_gates.SRTG)
    rows = [line.split(" | ") for line in ablate_gates.distance_table([path], clips=2).markdown().splitlines()[4:]]
    assert [r[2] for r in rows] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert [r[3] for r in rows] == ["4", "4", "2", "2", "1", "1", "1", "1"]  # 8x32² clips
    assert rows[0][4] != "–" and rows[-1][4] == "–" and float(rows[-1][6]) > 0  # T = 1: no frame pairs
    assert rows[-1][-1] == "1.00 |" and rows[0][-1] == "0.00 |"  # at initialisation (docs/gate_study.md table)
