"""Golden outputs: our networks with the reference weight fill reproduce the original's numbers (float32, CPU).

One model per family (R3D, R(2+1)D, Bottleneck, ir-/ip-CSN) and the SRTG versions with gates off, whose SR-free
backbone pass (``set_recursion(False)``) must also match the original's ``no_sr_backbone_*`` entries.
"""
from __future__ import annotations

import pytest
import torch
from golden import golden_fill, golden_input, summarise

import network

STAGES = ("stem", "pool", "layer1", "layer2", "layer3", "layer4")


def _run(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    hooks = [getattr(model, s).register_forward_hook(lambda m, i, o, s=s: out.__setitem__(s, o)) for s in STAGES]
    with torch.no_grad():
        out["features"] = model.forward_features(x)
        out["logits"] = model.fc(out["features"])
    for h in hooks:
        h.remove()
    return out


def _check(tensor: torch.Tensor, ref: dict, what: str) -> None:
    got = summarise(tensor)
    scale = abs(ref["std"]) + 1e-12
    for key in ("sum", "abs_sum", "std"):
        assert got[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-4 * scale * tensor.numel() ** 0.5), f"{what} {key}"
    assert got["first8"] == pytest.approx(ref["first8"], rel=1e-4, abs=1e-4 * scale), f"{what} first8"


def _check_all(out: dict[str, torch.Tensor], golden: dict, prefix: str = "", stages: tuple[str, ...] = STAGES) -> None:
    _check(out["logits"], golden[prefix + "logits"], prefix + "logits")
    _check(out["features"], golden[prefix + "features"], prefix + "features")
    for stage in stages:
        _check(out[stage], golden[prefix + "stages"][stage], f"{prefix}{stage}")


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return golden_input(112)


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18", "r3d_50", "ir_csn_50", "ip_csn_50"])
def test_plain_models_match_the_original(name: str, clip: torch.Tensor, reference: dict) -> None:
    golden = reference["models"][name]["golden"]
    assert float(clip.double().sum()) == pytest.approx(golden["input_sum"], rel=1e-9)
    out = _run(golden_fill(network.create_model(name)), clip)
    _check_all(out, golden)
    assert int(out["logits"].argmax()) == golden["logits"]["argmax"]


@pytest.mark.parametrize("name", ["srtg_r3d_18", "srtg_r2plus1d_18"])
def test_srtg_models_match_with_and_without_sr(name: str, clip: torch.Tensor, reference: dict) -> None:
    golden = reference["models"][name]["golden"]
    model = golden_fill(network.create_model(name))
    _check_all(_run(model, clip), golden)
    _check_all(_run(model.set_recursion(False), clip), golden, prefix="no_sr_backbone_")
