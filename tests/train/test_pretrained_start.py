"""--pretrained_3d with public weights: converted and loaded exactly into the matching network, refused for another
one; a partial load of one of our checkpoints names the layers it left random; checkpoints keep the input spec."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from pretrained_peers import save_peer

import network
from evaluation.inference import load_model
from network.config import ORIGINAL_INPUT, TORCHVISION_INPUT
from network.pretrained.torchvision import to_ours
from train.config import RunConfig
from train.results.checkpoint import StartPoint, restore, save_checkpoint


@pytest.fixture(scope="module")
def mc3_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    return save_peer("torchvision", "mc3_18", tmp_path_factory.mktemp("tv"))


def test_public_file_fills_every_backbone_tensor_and_gets_a_new_head(mc3_file, caplog) -> None:
    path, peer = mc3_file
    model = network.create_model("srtg_tv_mc3_18", num_classes=3)
    caplog.set_level(logging.INFO)
    ckpt = restore(StartPoint("pretrained", 0, path), model, network="srtg_tv_mc3_18", classes=["a", "b", "c"])
    theirs = to_ours(peer.state_dict(), "mc3_18")  # layer1's 3x3x3 convs sit one level deeper here
    assert "layer1.0.conv1.0.0.weight" in theirs and "layer2.0.conv1.0.weight" in theirs
    backbone = [k for k in model.state_dict() if ".sar." not in k and not k.startswith("fc.")]
    assert all(torch.equal(model.state_dict()[k], theirs[k]) for k in backbone)
    assert ckpt is not None and "layer1.0.conv1.0.weight" in ckpt["state_dict"]  # the publisher's names
    assert "new 3-way classifier (the file's has 400 classes)" in caplog.text
    assert "8 SR blocks keep their identity initialisation" in caplog.text
    assert "Initialised 'srtg_tv_mc3_18' from torchvision mc3_18 weights" in caplog.text


def test_public_file_into_another_network_is_refused_with_the_fix(mc3_file) -> None:
    path, _ = mc3_file
    with pytest.raises(ValueError) as err:
        restore(StartPoint("pretrained", 0, path), network.create_model("r3d_18", num_classes=3), network="r3d_18")
    assert str(err.value) == (f"{path}: torchvision mc3_18 weights fit --network tv_mc3_18 or srtg_tv_mc3_18, not "
                              "'r3d_18'; pass that --network (or --allow-partial True to load what fits anyway)")
    with pytest.raises(ValueError, match="a torchvision mc3_18 file, not vmz weights; pass the source 'torchvision' "
                                         r"\(--pretrained-source torchvision\)"):
        restore(StartPoint("pretrained", 0, path), network.create_model("vmz_ir_csn_50", num_classes=3),
                network="vmz_ir_csn_50", source="vmz")


def test_partial_original_checkpoint_warns_once_with_the_random_layers(tmp_path, caplog) -> None:
    """Our r3d_18 checkpoint without its 16 main 3x3x3 convs (the 87% load of a renamed file)."""
    source = network.create_model("r3d_18", num_classes=3)
    state = {k: v for k, v in source.state_dict().items()
             if not (k.startswith("layer") and k.endswith((".conv1.0.0.weight", ".conv2.0.0.weight")))}
    torch.save({"network": "r3d_18", "state_dict": state}, tmp_path / "partial.pth")
    caplog.set_level(logging.WARNING)
    restore(StartPoint("pretrained", 0, tmp_path / "partial.pth"), network.create_model("r3d_18", num_classes=3),
            network="r3d_18")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "16 backbone tensors stay random (16% of the backbone): layer1-4 conv weights (16 tensors)" in warnings[0]
    assert "filled 106 of the model's 122 tensors (87%)" in warnings[0]


@pytest.mark.slow
def test_checkpoint_keeps_the_input_spec_and_evaluation_reads_it(mc3_file, tmp_path) -> None:
    model = network.from_pretrained(mc3_file[0], "torchvision", "mc3_18", num_classes=3)
    path = save_checkpoint(tmp_path / "m.pth", model, 1, network="tv_mc3_18", classes=["a", "b", "c"])
    assert torch.load(path, weights_only=True)["input_spec"] == TORCHVISION_INPUT.to_dict()
    loaded = load_model(path)
    assert (loaded.channel_order, loaded.mean, loaded.std) == ("RGB", [0.43216, 0.394666, 0.37645],
                                                              [0.22803, 0.22145, 0.216989])
    assert loaded.model.input_spec == TORCHVISION_INPUT
    plain = save_checkpoint(tmp_path / "o.pth", network.create_model("r3d_18", num_classes=3), 1, network="r3d_18")
    state = torch.load(plain, weights_only=True)
    assert state["input_spec"] == ORIGINAL_INPUT.to_dict()
    del state["input_spec"]  # an older or original checkpoint: the network's own convention
    torch.save(state, plain)
    assert load_model(plain).channel_order == "BGR"


def test_pretrained_source_flag_is_checked() -> None:
    cfg = RunConfig.from_flat({"pretrained_3d": "x.pth", "pretrained_source": "3d-resnets"}, "hacs")
    assert cfg.model.pretrained_source == "3d-resnets"
    with pytest.raises(ValueError, match="--pretrained-source 'timm' is not one of torchvision, ig65m, 3d-resnets, "
                                         "vmz, original"):
        RunConfig.from_flat({"pretrained_3d": "x.pth", "pretrained_source": "timm"}, "hacs")
    with pytest.raises(ValueError, match="--pretrained-source names the source of a --pretrained_3d file"):
        RunConfig.from_flat({"pretrained_source": "vmz"}, "hacs")


def test_inference_loads_a_public_file_for_the_network_it_fits(mc3_file, caplog) -> None:
    """predict.py/evaluate.py --checkpoint torchvision.pth --network tv_mc3_18: converted exactly."""
    path, peer = mc3_file
    loaded = load_model(path, "tv_mc3_18")
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), peer(x), rtol=1e-5, atol=1e-5)
    assert loaded.channel_order == "RGB" and loaded.num_classes == 400
    assert "random weights" not in caplog.text
    with pytest.raises(ValueError, match=r"torchvision mc3_18 weights fit --network tv_mc3_18 or srtg_tv_mc3_18, "
                                         r"not 'r3d_18'; pass that --network$"):  # not its network: refused
        load_model(path, "r3d_18")
