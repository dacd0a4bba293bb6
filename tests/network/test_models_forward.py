"""Forward + backward of every registered network on a tiny clip (the largest on the ``meta`` device), plus odd and
tiny input sizes, bad layouts and autocast."""
from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from reference_data import original_models

import network
from network.srtg import Squeeze_and_Recursion

NUM_CLASSES = 7
LABELS = torch.tensor([1, 5])
# The smallest clips each family takes (MTNet: T >= 3 and H, W >= 33); B = 2 so training-mode BN has 2 values
# per channel where a ResNet's layer4 is 1x1x1.
RESNET_CLIP, MTNET_CLIP = (2, 3, 4, 32, 32), (2, 3, 3, 33, 33)
# Tiers by parameter count. Build + one step on the tiny clip, measured single-threaded for every network on a
# 2-core machine: up to 90 M parameters 0.2-2.7 s of CPU each (38 s for those 38); the 20 between 90 M and 250 M
# (152/200 layers, xt50/wide50, srtg_*101, MTNet xl/xxl) 2.0-4.8 s each (60 s), and no cheaper on the meta
# device (meta shape inference of a deep network costs as much as its real step); the 8 above 250 M (xt101,
# wide 101: 1-4 GB of weights) run on the meta device only.
MAX_REAL_PARAMS = 90_000_000
MIN_META_PARAMS = 250_000_000
RUN_ALL = os.environ.get("SRTG_TEST_ALL_MODELS") == "1"


def _num_params(name: str) -> int:
    """Parameters at 400 classes: the original's count (tests/reference) or, for a new network, counted on meta."""
    measured = {k.lower(): v["param_count"] for k, v in original_models()["models"].items()}
    if name in measured:
        return measured[name]
    with torch.device("meta"):
        return sum(p.numel() for p in network.create_model(name).parameters())


NAMES = network.list_models()
PARAMS = {n: _num_params(n) for n in NAMES}
ON_CPU = [n for n in NAMES if PARAMS[n] < MIN_META_PARAMS]
META = [n for n in NAMES if PARAMS[n] >= MIN_META_PARAMS]


# The quick subset steps one network of each family and source; the whole suite steps every one.
QUICK = {"r3d_18", "srtg_r3d_18", "r2plus1d_18", "srtg_r2plus1d_18", "ir_csn_50", "srtg_ip_csn_50", "mtnet_xs",
         "mtnet_xs_g8", "tv_mc3_18", "kr_r3d_18", "vmz_ir_csn_50"}


def _cpu_case(name: str) -> pytest.ParameterSet:
    slow = PARAMS[name] > MAX_REAL_PARAMS and not RUN_ALL
    marks = [pytest.mark.skipif(slow, reason=(
        f"{name}: {PARAMS[name] / 1e6:.0f} M parameters, 2-5 s of CPU to build and step, too slow for the suite "
        "(the same blocks run in the smaller networks); SRTG_TEST_ALL_MODELS=1 runs it"))]
    return pytest.param(name, marks=marks if name in QUICK else [*marks, pytest.mark.slow])


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny clips: with 2 threads the same forward + backward took 7x longer (thread hand-offs cost more than
    the work, measured on 2 busy cores), so this module runs single-threaded and restores the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _clip(name: str, device: str = "cpu") -> torch.Tensor:
    shape = MTNET_CLIP if name.startswith("mtnet") else RESNET_CLIP
    return torch.randn(shape, device=device) if device == "cpu" else torch.empty(shape, device=device)


def _sr_blocks(model: nn.Module) -> list[Squeeze_and_Recursion]:
    return [m for m in model.modules() if isinstance(m, Squeeze_and_Recursion)]


def test_the_split_covers_every_family() -> None:
    """The real set keeps at least one network of each family and the SR versions of each ResNet family."""
    real = [n for n in ON_CPU if PARAMS[n] <= MAX_REAL_PARAMS]
    assert sorted(ON_CPU + META) == NAMES and len(real) == 38 + 18 and len(META) == 8 + 6  # + network.pretrained
    for prefix in ("r3d_", "r2plus1d_", "ir_csn_", "ip_csn_", "mtnet_", "srtg_r3d_", "srtg_r2plus1d_",
                   "srtg_ir_csn_", "srtg_ip_csn_", "r3dxt", "r2plus1dxt"):
        assert any(n.startswith(prefix) for n in real), prefix


@pytest.mark.parametrize("name", [_cpu_case(n) for n in ON_CPU])
def test_forward_backward_tiny_clip(name: str) -> None:
    torch.manual_seed(0)
    model = network.create_model(name, num_classes=NUM_CLASSES).train()
    logits = model(_clip(name))
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()
    loss = F.cross_entropy(logits, LABELS)
    assert torch.isfinite(loss)
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == [], f"parameters outside the graph: {unused[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    first_conv = model.stem[0]
    assert isinstance(first_conv, nn.Conv3d) and float(first_conv.weight.grad.abs().sum()) > 0
    assert float(model.fc.weight.grad.abs().sum()) > 0
    sr = _sr_blocks(model)
    assert (len(sr) > 0) == name.startswith("srtg_")
    # weight_ih: weight_hh gets no gradient where the clip is down to one frame (zero initial state)
    assert all(float(m.lstm.weight_ih_l0.grad.abs().sum()) > 0 for m in sr)


def _meta_case(name: str) -> pytest.ParameterSet | str:
    """One meta-device case in the quick subset: meta shape inference of a deep network took 1-6 s each."""
    return name if name == "r3dxt101_32x8d" else pytest.param(name, marks=pytest.mark.slow)


@pytest.mark.parametrize("name", [_meta_case(n) for n in META])
def test_forward_backward_on_meta_device(name: str) -> None:
    """Too large to run here (see MIN_META_PARAMS): the output shape, and every parameter reached by backward."""
    with torch.device("meta"):
        model = network.create_model(name, num_classes=NUM_CLASSES).train()
    logits = model(_clip(name, "meta"))
    assert logits.shape == (2, NUM_CLASSES) and logits.is_meta
    F.cross_entropy(logits, LABELS.to("meta")).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert model.stem[0].weight.grad.shape == model.stem[0].weight.shape
    assert (len(_sr_blocks(model)) > 0) == name.startswith("srtg_")


@pytest.mark.parametrize("name", ["srtg_r3d_18", "mtnet_xs_g8"])
def test_recurrent_blocks_run_on_meta_device(name: str) -> None:
    """The recurrent cells leave autocast only where the device has one (meta has none)."""
    with torch.device("meta"):
        model = network.create_model(name, num_classes=NUM_CLASSES)
    assert model(_clip(name, "meta")).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("kwargs", [{"gates": True, "recurrent": "gru"}, {"place": "mid", "sr_init": "pytorch"}])
def test_sr_options_forward_backward(kwargs: dict) -> None:
    torch.manual_seed(0)
    model = network.create_model("srtg_ir_csn_50", num_classes=NUM_CLASSES, **kwargs).train()
    logits = model(_clip("srtg_ir_csn_50"))
    F.cross_entropy(logits, LABELS).backward()
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(model.stem[0].weight.grad).all()
    cells = [m.rnn for m in _sr_blocks(model)]
    assert len(cells) == 16 and all(isinstance(c, nn.GRU if "recurrent" in kwargs else nn.LSTM) for c in cells)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for c in cells for p in c.parameters())
    if not kwargs.get("gates"):  # gates on: only cycle-consistent samples give the cell a gradient
        assert all(float(c.weight_ih_l0.grad.abs().sum()) > 0 for c in cells)


@cache
def _eval_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return network.create_model(name, num_classes=3, **({"gates": True} if name.startswith("srtg") else {})).eval()


@pytest.mark.parametrize("shape", [(2, 3, 5, 33, 47), (1, 3, 1, 1, 1), (1, 3, 2, 3, 5)])
@pytest.mark.parametrize("name", ["srtg_r3d_18", "r2plus1d_18"])
def test_odd_and_tiny_sizes_work(name: str, shape: tuple[int, ...]) -> None:
    """Every T, H, W >= 1 gives logits (layer4 becomes 1x1x1); the original needed H, W >= 16 for SR."""
    with torch.no_grad():
        logits = _eval_model(name)(torch.randn(shape))
    assert logits.shape == (shape[0], 3) and torch.isfinite(logits).all()


@pytest.mark.parametrize("shape", [(3, 8, 32, 32), (1, 1, 8, 32, 32), (1, 3, 0, 32, 32)])
def test_bad_clip_layout_is_a_one_line_error(shape: tuple[int, ...]) -> None:
    with torch.device("meta"):
        model = network.create_model("r3d_18")
    with pytest.raises(ValueError, match=r"expected a clip of shape \(B, 3, T, H, W\)") as err:
        model(torch.empty(shape))
    assert "\n" not in str(err.value)


def test_autocast_bfloat16_forward() -> None:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = _eval_model("srtg_r3d_18")(torch.randn(2, 3, 4, 32, 32))
    assert logits.shape == (2, 3) and logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
