"""The model factory: exact, case-insensitive names, helpful errors, the original's get_symbol contract."""
from __future__ import annotations

import pytest
import torch

import network
from network.registry import register_model
from network.srtg_resnet import VideoResNet


def test_names_are_case_insensitive_and_exact() -> None:
    with torch.device("meta"):
        upper = network.create_model("SRTG_R3D_18", num_classes=10)
        plain = network.create_model("r3d_18", num_classes=10)
    # The original's substring factory built the plain backbone for every srtg_* name (spec 5.1).
    assert any(".sar.lstm." in k for k in upper.state_dict())
    assert not any(".sar." in k for k in plain.state_dict())
    assert upper.fc.out_features == 10


def test_every_srtg_name_builds_sr_blocks() -> None:
    srtg = [n for n in network.list_models() if n.startswith("srtg_")]
    assert len(srtg) == 28
    with torch.device("meta"):
        assert all(isinstance(network.create_model(n), VideoResNet) for n in srtg[:3])


def test_mtnet_alias_builds_mtnet_m() -> None:
    if "mtnet_m" not in network.list_models():
        pytest.skip("MTNet not registered")
    with torch.device("meta"):
        alias, direct = network.create_model("mtnet"), network.create_model("MTNet_m")
    assert type(alias) is type(direct) and alias.state_dict().keys() == direct.state_dict().keys()


@pytest.mark.parametrize("name, hint", [("srtg_r3d_32", "srtg_r3d_34"), ("r3d_26", "r3d_200"),
                                        ("resnet50", None), ("ir_csn50", "ir_csn_50")])
def test_unknown_names_raise_one_line_with_close_matches(name: str, hint: str | None) -> None:
    with pytest.raises(ValueError) as err:
        network.create_model(name)
    message = str(err.value)
    assert "\n" not in message and f"unknown network '{name}'" in message
    if hint:
        assert hint in message


def test_duplicate_registration_raises_and_keeps_the_original() -> None:
    before = network.list_models()

    def r3d_18(**kw):  # noqa: ANN003, ANN202
        raise AssertionError("must never be registered")

    with pytest.raises(ValueError, match="registered twice"):
        register_model(r3d_18)
    assert network.list_models() == before
    with torch.device("meta"):
        assert isinstance(network.create_model("r3d_18"), VideoResNet)


def test_get_symbol_returns_model_and_the_mfnet_input_config() -> None:
    with torch.device("meta"):
        model, conf = network.get_symbol("r2plus1d_18", num_classes=51)
    assert model.fc.out_features == 51
    assert conf["mean"] == pytest.approx([0.48627, 0.45882, 0.40784], abs=1e-5)
    assert conf["std"] == pytest.approx([0.234824] * 3, abs=1e-6)


def test_plain_models_reject_sr_options() -> None:
    with pytest.raises(ValueError, match="only apply with recursion=True"):
        network.create_model("r3d_18", gates=True)
