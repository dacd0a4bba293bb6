"""Forward + backward of small clips through a representative set of the zoo (the big ones are covered by the
meta-device key test), plus odd and tiny input sizes."""
from __future__ import annotations

import pytest
import torch

import network
from network.srtg import Squeeze_and_Recursion

# The plain backbones of the srtg_* entries are exercised too (golden tests cover every plain forward).
REPRESENTATIVE = [
    ("srtg_r3d_18", {}), ("srtg_r2plus1d_18", {"gates": True}),
    ("srtg_ir_csn_50", {"gates": True, "place": "mid"}), ("srtg_ip_csn_50", {"recurrent": "gru", "gates": True}),
]


def test_representative_set_spans_every_family() -> None:
    prefixes = {name.removeprefix("srtg_").split("_")[0].rstrip("0123456789") for name, _ in REPRESENTATIVE}
    assert {"r3d", "r2plus1d", "ir", "ip"} <= prefixes


@pytest.mark.parametrize("name, kwargs", REPRESENTATIVE, ids=[f"{n}-{k}" for n, k in REPRESENTATIVE])
def test_forward_backward_small_clip(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = network.create_model(name, num_classes=7, **kwargs).train()
    clip = torch.randn(2, 3, 8, 64, 64)
    logits = model(clip)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 5])).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for n, g in grads.items() if ".sar." not in n)
    assert float(model.fc.weight.grad.abs().sum()) > 0
    sr = [m for m in model.modules() if isinstance(m, Squeeze_and_Recursion)]
    assert (len(sr) > 0) == name.startswith("srtg_")
    if sr and not kwargs.get("gates"):  # gates on: only cycle-consistent samples give the LSTM a gradient
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in sr[0].rnn.parameters())


@pytest.mark.parametrize("shape", [(2, 3, 5, 33, 47), (1, 3, 1, 1, 1), (1, 3, 2, 3, 5)])
@pytest.mark.parametrize("name", ["srtg_r3d_18", "r2plus1d_18"])
def test_odd_and_tiny_sizes_work(name: str, shape: tuple[int, ...]) -> None:
    """Every T, H, W >= 1 gives logits (layer4 becomes 1x1x1); the original needed H, W >= 16 for SR."""
    model = network.create_model(name, num_classes=3, **({"gates": True} if name.startswith("srtg") else {}))
    with torch.no_grad():
        assert model.eval()(torch.randn(shape)).shape == (shape[0], 3)


@pytest.mark.parametrize("shape", [(3, 8, 32, 32), (1, 1, 8, 32, 32), (1, 3, 0, 32, 32)])
def test_bad_clip_layout_is_a_one_line_error(shape: tuple[int, ...]) -> None:
    with torch.device("meta"):
        model = network.create_model("r3d_18")
    with pytest.raises(ValueError, match=r"expected a clip of shape \(B, 3, T, H, W\)") as err:
        model(torch.empty(shape))
    assert "\n" not in str(err.value)


def test_autocast_bfloat16_forward() -> None:
    model = network.create_model("srtg_r3d_18", num_classes=4, gates=True).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 4, 32, 32))
    assert logits.shape == (2, 4) and torch.isfinite(logits.float()).all()
