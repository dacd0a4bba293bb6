"""tools/export.py: TorchScript and ONNX files whose outputs match the PyTorch model they came from."""
from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import pytest
import torch
from marks import slow_except

from data.catalog.labels import write_dictionary
from network import create_model
from network.config import MEAN, STD
from tools.export import export, main, read_metadata

# (network, T, S): the smallest inputs each family accepts (MTNet needs >= 3 frames and >= 33 pixels).
CASES = {"r3d_18": (4, 32), "srtg_r3d_18": (4, 32), "mtnet_xs": (4, 40)}
CLASSES = ["ApplyEyeMakeup", "Archery", "BalanceBeam"]
FRAME_INTERVAL = 3  # the checkpoint's saved validation interval, which the metadata must report


@cache
def _checkpoint(folder: Path, network: str) -> tuple[Path, torch.nn.Module]:
    """An original-style checkpoint (``module.`` keys, 3 classes) of a seeded random model, once per network."""
    torch.manual_seed(0)
    model = create_model(network, num_classes=3).eval()
    path = folder / f"{network}.pth"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "classes": CLASSES, "args": {"gates": False, "val_frame_interval": FRAME_INTERVAL}}, path)
    return path, model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export_ckpts")
    return lambda network: _checkpoint(folder, network)


def _assert_same(got: torch.Tensor, expected: torch.Tensor) -> None:
    # relative to the largest logit: random-init SRTG logits are ~1e-17 (SR blocks shrink activations)
    assert got.shape == expected.shape == (2, 3)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def _assert_metadata(meta: dict, network: str, classes: list[str] = CLASSES) -> None:
    t, s = CASES[network]
    assert meta["network"] == network and meta["class_names"] == classes and meta["num_classes"] == 3
    assert meta["input_layout"] == "(B, 3, T, H, W)" and meta["input_shape"] == ["B", 3, t, s, s]
    assert meta["channel_order"] == "BGR" and meta["normalisation"].startswith("(x/255 - mean)/std")
    assert meta["mean"] == pytest.approx(MEAN) and meta["std"] == pytest.approx(STD)
    assert (meta["clip_length"], meta["clip_size"], meta["frame_interval"]) == (t, s, FRAME_INTERVAL)
    assert meta["gates"] is False and meta["checkpoint_epoch"] == 1


def _input(network: str) -> torch.Tensor:
    t, s = CASES[network]
    return torch.randn(2, 3, t, s, s, generator=torch.Generator().manual_seed(7))  # batch 2: traced with 1


@pytest.mark.parametrize("network", slow_except(CASES, {"r3d_18"}))
def test_torchscript_round_trip(saved, tmp_path, capsys, network):
    ckpt, model = saved(network)
    t, s = CASES[network]
    out = tmp_path / "m.pt"
    if network == "r3d_18":  # once through the command line
        assert main(["--network", network, "--checkpoint", str(ckpt), "--format", "torchscript", "--clip-length",
                     str(t), "--clip-size", str(s), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "max |exported - pytorch| / max |pytorch|" in printed
        assert f"input 'video' float32 (B, 3, {t}, {s}, {s})" in printed and "BGR" in printed
        assert "x = (pixel/255 - mean)/std" in printed and "'ApplyEyeMakeup'" in printed
    else:
        # MTNet's forward is slow on CPU (~2 s per clip here): its check is the comparison below only
        check = network != "mtnet_xs"
        path, rel, shape = export(network, ckpt, "torchscript", out, clip_length=t, clip_size=s, check=check)
        assert path == out and shape == (1, 3, t, s, s) and (rel < 1e-4 if check else rel is None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in torch 2.14
        extra = {"meta.json": ""}
        loaded = torch.jit.load(str(out), _extra_files=extra)
    _assert_metadata(json.loads(extra["meta.json"]), network)
    assert read_metadata(out) == json.loads(extra["meta.json"])
    x = _input(network)
    with torch.no_grad():
        _assert_same(loaded(x), model(x))


@pytest.mark.parametrize("network", slow_except(["r3d_18", "srtg_r3d_18"], {"r3d_18"}))
def test_onnx_round_trip(saved, tmp_path, network):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ckpt, model = saved(network)
    t, s = CASES[network]
    out, rel, _ = export(network, ckpt, "onnx", tmp_path / "m.onnx", clip_length=t, clip_size=s)
    assert rel is not None and rel < 1e-4
    session = ort.InferenceSession(str(out))
    props = session.get_modelmeta().custom_metadata_map  # where the printed instructions point a user
    assert props["channel_order"] == "BGR" and json.loads(props["class_names"]) == CLASSES
    _assert_metadata(read_metadata(out), network)
    x = _input(network)
    with torch.no_grad():
        _assert_same(torch.from_numpy(session.run(None, {"video": x.numpy()})[0]), model(x))


def test_labels_file_names_the_classes_and_must_match_the_head(saved, tmp_path):
    ckpt, _ = saved("r3d_18")
    t, s = CASES["r3d_18"]
    names = ["walk", "run", "jump"]
    write_dictionary(tmp_path / "d_dictionary.json", {n: i for i, n in enumerate(names)})
    out, _, _ = export("r3d_18", ckpt, "torchscript", tmp_path / "m.pt", clip_length=t, clip_size=s, check=False,
                       labels=tmp_path / "d_dictionary.json")
    _assert_metadata(read_metadata(out), "r3d_18", names)
    write_dictionary(tmp_path / "two_dictionary.json", {"walk": 0, "run": 1})
    with pytest.raises(ValueError, match="2 class names for a 3-class model"):
        export("r3d_18", ckpt, "torchscript", tmp_path / "m2.pt", clip_length=t, clip_size=s, check=False,
               labels=tmp_path / "two_dictionary.json")


def test_checkpoint_of_another_network_is_one_line_error(saved, capsys):
    ckpt, _ = saved("r3d_18")
    assert main(["--network", "mtnet_xs", "--checkpoint", str(ckpt), "--format", "torchscript"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "does not fit network 'mtnet_xs'" in err[-1]
