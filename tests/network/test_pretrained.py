"""Imports of public weights are exact or refused: each peer network (torchvision's own code, or the publisher's
layer list rebuilt in ``pretrained_peers``) is saved with random weights in its publisher's format, imported with
``network.from_pretrained``, and must give the peer's outputs in eval mode."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from marks import slow_except
from pretrained_peers import CLIP, save_peer

import network
from network.config import RESNETS3D_INPUT, TORCHVISION_INPUT
from network.pretrained import detect, import_public
from network.pretrained.common import describe_random, read_weights
from network.srtg import Squeeze_and_Recursion

PEERS = [("torchvision", "r3d_18"), ("torchvision", "mc3_18"), ("torchvision", "r2plus1d_18"),
         ("ig65m", "r2plus1d_34"), ("3d-resnets", "r3d_18"), ("3d-resnets", "r3d_34"), ("vmz", "ir_csn_152"),
         ("vmz", "ip_csn_50")]
CONVENTION = {"torchvision": TORCHVISION_INPUT, "ig65m": TORCHVISION_INPUT, "vmz": TORCHVISION_INPUT,
              "3d-resnets": RESNETS3D_INPUT}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class PeerFiles(dict):
    """``files[(source, arch)]`` -> ``(path, peer)``, built and saved on first use (1-3 s each)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def __missing__(self, peer: tuple[str, str]) -> tuple[Path, torch.nn.Module]:
        self[peer] = save_peer(*peer, self.folder)
        return self[peer]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> PeerFiles:
    return PeerFiles(tmp_path_factory.mktemp("public"))


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def _clip(seed: int = 1) -> torch.Tensor:
    return torch.randn(CLIP, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("source, arch", slow_except(PEERS, {("torchvision", "r3d_18"), ("vmz", "ip_csn_50")}))
def test_import_gives_the_peers_outputs(files, source: str, arch: str) -> None:
    path, peer = files[(source, arch)]
    model = network.from_pretrained(path, source, arch).eval()
    x = _clip()
    with torch.no_grad():
        theirs, ours = peer(x), model(x)
    assert ours.shape == theirs.shape and _relative(ours, theirs) <= 1e-5
    assert model.input_spec == CONVENTION[source]
    assert detect(read_weights(path)) == (source, arch)  # recognised without being told


def test_the_original_network_differs_from_torchvisions(files) -> None:
    """Same tensors, other function: our r3d_18 pools after the stem, torchvision's does not."""
    path, peer = files[("torchvision", "r3d_18")]
    model = network.create_model("r3d_18", num_classes=400).eval()
    state = network.from_pretrained(path, "torchvision", "r3d_18").state_dict()
    model.load_state_dict(state)
    with torch.no_grad():
        assert _relative(model(_clip()), peer(_clip())) > 1e-2
    with pytest.raises(ValueError, match=r"torchvision r3d_18 weights fit --network tv_r3d_18 or srtg_tv_r3d_18, "
                                         r"not 'r3d_18'"):
        import_public(model, path, "r3d_18")


@pytest.mark.slow
def test_new_head_and_srtg_twin_keep_the_backbone(files, caplog: pytest.LogCaptureFixture) -> None:
    path, peer = files[("torchvision", "r2plus1d_18")]
    caplog.set_level(logging.INFO, logger="network.pretrained")
    model = network.from_pretrained(path, "torchvision", "r2plus1d_18", num_classes=10, srtg=True).eval()
    assert model.num_classes == 10 and model.input_spec == TORCHVISION_INPUT
    assert sum(isinstance(m, Squeeze_and_Recursion) for m in model.modules()) == 8
    theirs = peer.state_dict()
    for key, value in model.state_dict().items():
        if ".sar." not in key and not key.startswith("fc."):
            assert torch.equal(value, theirs[key]), key
    assert "new 10-way classifier (the file's has 400 classes)" in caplog.text
    assert "8 SR blocks keep their identity initialisation" in caplog.text
    with torch.no_grad():  # SR blocks off: exactly the imported backbone
        assert torch.allclose(model.set_recursion(False).forward_features(_clip()), peer.avgpool(
            peer.layer4(peer.layer3(peer.layer2(peer.layer1(peer.stem(_clip())))))).flatten(1), rtol=1e-5, atol=1e-6)


def test_a_file_from_another_source_is_refused_in_one_line(files) -> None:
    path, _ = files[("3d-resnets", "r3d_18")]
    with pytest.raises(ValueError) as err:
        network.from_pretrained(path, "torchvision", "r3d_18")
    assert "\n" not in str(err.value)
    assert "a 3d-resnets r3d_18 file, not torchvision weights; pass the source '3d-resnets'" in str(err.value)


def test_a_file_of_another_depth_is_refused_in_one_line(files) -> None:
    path, _ = files[("3d-resnets", "r3d_34")]
    with pytest.raises(ValueError, match=r"a 3d-resnets r3d_34 file \(blocks per stage \(3, 4, 6, 3\)\), not "
                                         r"r3d_18; pass arch 'r3d_34'$"):
        network.from_pretrained(path, "3d-resnets", "r3d_18")


def test_a_truncated_file_is_refused_in_one_line(files, tmp_path: Path) -> None:
    path, _ = files[("torchvision", "mc3_18")]
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut.pth: torch.load failed \(\w+\): the file is truncated or not a "
                                         r"PyTorch file; download it again$"):
        network.from_pretrained(cut, "torchvision", "mc3_18")


def test_a_missing_or_reshaped_tensor_is_named(files, tmp_path: Path) -> None:
    path, _ = files[("torchvision", "mc3_18")]
    state = torch.load(path, weights_only=True)
    del state["layer3.1.conv2.0.weight"]
    state["layer4.0.conv1.1.weight"] = torch.ones(3)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError) as err:
        network.from_pretrained(tmp_path / "broken.pth", "torchvision", "mc3_18")
    message = str(err.value)
    assert "\n" not in message and "1 model tensors not in the file: layer3.1.conv2.0.weight" in message
    assert "1 with another shape: layer4.0.conv1.1.weight (3,) vs (512,)" in message


def test_unknown_source_and_arch_list_the_choices(files) -> None:
    path, _ = files[("torchvision", "r3d_18")]
    with pytest.raises(ValueError, match="unknown weight source 'timm'; choose one of torchvision, ig65m, "
                                         "3d-resnets, vmz, original"):
        network.from_pretrained(path, "timm", "r3d_18")
    with pytest.raises(ValueError, match="torchvision arch 'r3d_34' is not importable; choose one of r3d_18, "
                                         "mc3_18, r2plus1d_18"):
        network.from_pretrained(path, "torchvision", "r3d_34")


def test_random_layers_are_grouped() -> None:
    model = network.create_model("r3d_18", num_classes=5)
    convs = [k for k in model.state_dict() if k.endswith(".0.0.weight") and k.startswith("layer")]
    text = describe_random(model, convs + ["stem.1.weight", "stem.1.bias"])
    assert text == "layer1-4 conv weights (16 tensors), stem BN parameters (2 tensors)"


def test_a_training_file_with_python_objects_is_refused_in_one_line(tmp_path: Path) -> None:
    """VMZ's training script saves its argparse arguments beside the weights; they are never unpickled."""
    import argparse

    torch.save({"model": {"fc.weight": torch.ones(2, 2)}, "args": argparse.Namespace(lr=0.1)}, tmp_path / "t.pth")
    with pytest.raises(ValueError, match=r"t.pth: torch.load failed \(UnpicklingError\): it holds Python objects "
                                         r"besides tensors, which are not unpickled \(weights_only\); load it "
                                         r"yourself and torch.save its state_dict$"):
        network.from_pretrained(tmp_path / "t.pth", "vmz", "ir_csn_152")


def _bare_state_of(name: str, path: Path) -> Path:
    """A bare state_dict of our network ``name`` as someone might ``torch.save`` it: its real key names, with
    one-element tensors (detection reads names and a few shapes; the refusal comes before any load)."""
    with torch.device("meta"):
        keys = list(network.create_model(name, num_classes=4).state_dict())
    torch.save({k: torch.zeros(1) for k in keys}, path)
    return path


@pytest.mark.parametrize("name, fits", [("r2plus1d_34", "no network here (importable torchvision archs: r3d_18, "
                                                        "mc3_18, r2plus1d_18)"),
                                        ("srtg_r2plus1d_18", "--network tv_r2plus1d_18 or srtg_tv_r2plus1d_18")])
def test_a_bare_state_dict_of_ours_is_refused_naming_the_source_that_loads_it(tmp_path: Path, name: str,
                                                                              fits: str) -> None:
    """Our R(2+1)D keys are torchvision's: the refusal names --pretrained-source original (not --allow-partial
    where that cannot help), and that source hands the file back for the caller's name-and-shape load (None)."""
    path = _bare_state_of(name, tmp_path / "ours.pth")
    with torch.device("meta"):
        model = network.create_model(name, num_classes=4)
    for allow in (False, True) if fits.startswith("no network") else (False,):
        with pytest.raises(ValueError) as err:
            import_public(model, path, name, allow_other_network=allow)
        assert str(err.value) == (f"{path}: torchvision r2plus1d_{name[-2:]} weights fit {fits}, not '{name}'"
                                  + ("" if allow or fits.startswith("no network") else
                                     "; pass that --network (or --allow-partial True to load what fits anyway)")
                                  + f"; if it is a state_dict of this project's '{name}', pass --pretrained-source "
                                  "original")
    assert import_public(model, path, name, source="original") is None


def test_a_source_given_for_another_network_names_the_networks_it_loads(tmp_path: Path) -> None:
    path = _bare_state_of("r2plus1d_34", tmp_path / "ours.pth")
    with torch.device("meta"):
        model = network.create_model("r2plus1d_34", num_classes=4)
    with pytest.raises(ValueError, match=r"fit no network here .*, not 'r2plus1d_34'; torchvision weights go into "
                                         r"tv_r3d_18, tv_mc3_18, tv_r2plus1d_18$"):
        import_public(model, path, "r2plus1d_34", source="torchvision")


def test_a_checkpoint_of_ours_trained_on_other_frames_is_refused(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Our tv_r3d_18 run (RGB, torchvision mean/std, no stem pool) has r3d_18's tensor names: as r3d_18 (BGR, the
    original's mean/std, a stem pool) it would compute something else, so it is refused unless --allow-partial."""
    path = tmp_path / "tv_run.pth"
    torch.save({"epoch": 3, "network": "tv_r3d_18", "state_dict": {"fc.bias": torch.zeros(2)},
                "input_spec": TORCHVISION_INPUT.to_dict()}, path)
    with torch.device("meta"):
        model = network.create_model("r3d_18", num_classes=2)
    with pytest.raises(ValueError) as err:
        import_public(model, path, "r3d_18")
    assert str(err.value) == (f"{path}: trained as 'tv_r3d_18' on RGB frames (mean {list(TORCHVISION_INPUT.mean)}), "
                              f"but 'r3d_18' takes BGR frames (mean {list(model.input_spec.mean)}): its weights would "
                              "see other inputs; pass --network tv_r3d_18 (or --allow-partial True to load it anyway)")
    with pytest.raises(ValueError, match="trained as 'tv_r3d_18' on RGB frames"):
        import_public(model, path, "r3d_18", source="original")
    with caplog.at_level(logging.WARNING, logger="network.pretrained"):
        assert import_public(model, path, "r3d_18", allow_other_network=True) is None  # the caller loads it
    assert "its weights would see other inputs; loading it anyway (--allow-partial)" in caplog.text
    with torch.device("meta"):
        assert import_public(network.create_model("srtg_tv_r3d_18", num_classes=2), path, "srtg_tv_r3d_18") is None


def test_inference_refuses_a_public_file_for_a_network_with_other_names(files) -> None:
    """evaluate/predict --checkpoint torchvision_r3d_18.pth --network r3d_18: not 'loaded by name' (nothing would
    fit) but refused naming the network it fits; a file with the network's own names still loads by name."""
    path, _ = files[("torchvision", "r3d_18")]
    model = network.create_model("r3d_18", num_classes=400)
    with pytest.raises(ValueError) as err:
        import_public(model, path, "r3d_18", only_if_fits=True)
    assert str(err.value) == (f"{path}: torchvision r3d_18 weights fit --network tv_r3d_18 or srtg_tv_r3d_18, not "
                              "'r3d_18'; pass that --network")
    tv_path, _ = files[("torchvision", "r2plus1d_18")]
    with torch.device("meta"):
        ours = network.create_model("srtg_r2plus1d_18", num_classes=400)  # our keys, SR blocks aside
    assert import_public(ours, tv_path, "srtg_r2plus1d_18", only_if_fits=True) is None
