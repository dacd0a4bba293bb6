"""tools/profile_model.py: FLOPs agree with the original's reference figures, the CLI runs end to end."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import network

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import profile_model  # noqa: E402


def test_flops_match_the_reference_including_the_lstms(reference: dict) -> None:
    """ptflops counts nn.LSTM; 2 FLOPs per MAC as the reference (convs + fc + analytic LSTM)."""
    model = network.create_model("srtg_r3d_18")
    flops = profile_model.count_flops(model, 16, 112)
    assert flops == pytest.approx(reference["models"]["srtg_r3d_18"]["outputs"]["112"]["flops_total"], rel=1e-4)


def test_cli_on_a_tiny_clip(capsys: pytest.CaptureFixture) -> None:
    assert profile_model.main(["--network", "R3D_18", "--clip-length", "4", "--clip-size", "32",
                               "--batch-size", "2", "--repeats", "1", "--warmup", "0", "--num-classes", "10",
                               "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "params      33.171 M   (original: 33.171 M)" in out  # 513 * (10 - 400) fewer than the table
    assert "GFLOPs" in out and "no reference" in out  # FLOPs were measured at 16x112/224 only
    assert "forward eval" in out and "backward" in out


def test_reference_lookup_is_case_insensitive() -> None:
    ref = profile_model.reference_figures("mtnet_xs", 16, 224, 400)
    assert ref is not None and ref["params"] == 21_835_664 and ref["flops"] > 0
    assert profile_model.reference_figures("no_such_net", 16, 112, 400) is None


def test_batch_one_on_one_voxel_maps(capsys: pytest.CaptureFixture) -> None:
    """At batch 1 the deepest maps are 1x1x1: BatchNorm in training mode would fail, the timing does not."""
    assert profile_model.main(["--network", "r3d_18", "--clip-length", "2", "--clip-size", "16", "--batch-size", "1",
                               "--repeats", "1", "--warmup", "0", "--device", "cpu"]) == 0
    assert "latency (batch 1" in capsys.readouterr().out


@pytest.mark.slow
def test_needs_only_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from train.config import RunConfig
    from train.results.checkpoint import save_checkpoint

    model = network.create_model("r3d_18", num_classes=5)
    config = RunConfig.from_flat({"network": "r3d_18", "clip_length": 2, "clip_size": 16}, "X")
    path = save_checkpoint(tmp_path / "r3d_18_ep-0001.pth", model, 1, network="r3d_18", config=config.to_dict())
    assert profile_model.main(["--checkpoint", str(path), "--repeats", "1", "--warmup", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "network r3d_18: input (B, 3, 2, 16, 16)" in out  # the run's validation clip
