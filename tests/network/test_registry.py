"""The model factory: every name builds what it says (SR blocks for srtg_*, none otherwise), strict lookup."""
from __future__ import annotations

import logging
import re

import pytest
import torch
import torch.nn as nn

import network
from network import registry, srtg_resnet
from network.blocks import BasicBlock, Bottleneck
from network.registry import register_model
from network.srtg import Squeeze_and_Recursion

# Residual blocks per depth (layers per stage summed), written out rather than read from network.srtg_resnet.
BLOCKS_PER_DEPTH = {18: 8, 34: 16, 50: 16, 101: 33, 152: 50, 200: 66}
PUBLIC_PREFIXES = ("tv_", "ig65m_", "kr_", "vmz_")  # networks of public weights, each with its srtg_ twin
SRTG = sorted(n for n in network.list_models() if n.startswith("srtg_"))


def _depth(name: str) -> int:
    return int(re.search(r"(18|34|50|101|152|200)", name).group(1))


def _on_meta(name: str, **kwargs) -> nn.Module:  # noqa: ANN003
    with torch.device("meta"):
        return network.create_model(name, num_classes=10, **kwargs)


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (BasicBlock, Bottleneck))]


def _sr_modules(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, Squeeze_and_Recursion)]


def test_registry_lists_every_family_once() -> None:
    names = network.list_models()
    assert names == sorted(set(names)) and all(n == n.lower() for n in names)
    public = [n for n in names if n.removeprefix("srtg_").startswith(PUBLIC_PREFIXES)]  # network.pretrained
    assert len(names) - len(public) == 66 and len(SRTG) - len(public) // 2 == 28  # the original's 66 names
    assert len(public) == 24
    # every srtg_X has its plain X, and every ResNet X has its srtg_X
    plain_resnets = {n for n in names if not n.startswith(("srtg_", "mtnet"))}
    assert {n.removeprefix("srtg_") for n in SRTG} == plain_resnets
    assert sum(n.startswith("mtnet") for n in names) == 10


@pytest.mark.parametrize("name", SRTG)
def test_srtg_name_has_one_sr_block_after_every_residual_block(name: str) -> None:
    srtg, plain = _on_meta(name), _on_meta(name.removeprefix("srtg_"))
    blocks = _blocks(srtg)
    assert len(blocks) == BLOCKS_PER_DEPTH[_depth(name)]
    assert _sr_modules(srtg) == [f"{n}.sar" for n, _ in blocks]  # exactly one per block, nowhere else
    for _, block in blocks:
        assert block.place == "final" and not block.sar.gate and block.sar.recurrent == "lstm"
        out_channels = block.last_bn.num_features  # what the block outputs, i.e. what a 'final' SR block sees
        assert block.sar.lstm.input_size == block.sar.lstm.hidden_size == out_channels
        assert block.sar.lstm.num_layers == 2
    assert _sr_modules(plain) == [] and all(b.sar is None for _, b in _blocks(plain))
    # the same backbone: srtg_X minus its SR weights is X, key for key and shape for shape
    backbone = {k: v.shape for k, v in srtg.state_dict().items() if ".sar." not in k}
    assert backbone == {k: v.shape for k, v in plain.state_dict().items()}


@pytest.mark.parametrize("name", ["srtg_r3d_18", "srtg_ir_csn_50"])  # BasicBlock and Bottleneck
def test_sr_block_runs_last_on_the_block_output_after_the_relu(name: str) -> None:
    """Forward hooks on a real network: the SR block is the last step of every residual block."""
    torch.manual_seed(0)
    model = network.create_model(name, num_classes=3).eval()
    calls: list[tuple[str, str]] = []
    seen: dict[str, dict[str, torch.Tensor]] = {}

    def record(block: str, child: str):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            calls.append((block, child))
            if child == "sar":
                seen.setdefault(block, {})["in"] = args[0].detach().clone()
                seen[block]["sar_out"] = output
            elif child == "<block>":
                seen.setdefault(block, {})["block_out"] = output
        return hook

    blocks = _blocks(model)
    for bname, block in blocks:
        for cname, child in block.named_children():
            child.register_forward_hook(record(bname, cname))
        block.register_forward_hook(record(bname, "<block>"))
    with torch.no_grad():
        model(torch.randn(1, 3, 4, 16, 16))
    for bname, _ in blocks:
        own = [child for b, child in calls if b == bname]
        assert own.count("sar") == 1 and own[-2:] == ["sar", "<block>"], own
        assert own.index("relu") < own.index("sar")
        assert seen[bname]["block_out"] is seen[bname]["sar_out"]  # nothing after the SR block
        assert float(seen[bname]["in"].min()) >= 0  # it sees the post-ReLU sum


def test_names_are_case_insensitive_and_build_exactly_what_they_name() -> None:
    upper, lower = _on_meta("  SRTG_R3D_18 "), _on_meta("srtg_r3d_18")
    assert upper.state_dict().keys() == lower.state_dict().keys() and len(_sr_modules(upper)) == 8
    assert upper.fc.out_features == 10
    # a name maps to its own constructor (the original matched substrings: mtnet_xs built MTNet_s)
    assert registry._MODELS["r3d_18"] is srtg_resnet.r3d_18
    assert registry._MODELS["mtnet_xs"].__name__ == "mtnet_xs"


def test_mtnet_alias_builds_the_same_architecture_as_mtnet_m() -> None:
    with torch.device("meta"):
        alias, direct = network.create_model("mtnet"), network.create_model("MTNet_m")
    shapes = {k: v.shape for k, v in direct.state_dict().items()}
    assert type(alias) is type(direct) and {k: v.shape for k, v in alias.state_dict().items()} == shapes
    assert sum(p.numel() for p in alias.parameters()) == 44_038_288  # the original's MTNet_m, 400 classes
    assert "mtnet" not in network.list_models()  # an alias, not a second registration


@pytest.mark.parametrize("name, hints", [("srtg_r3d_32", ["srtg_r3d_34"]), ("r3d_26", ["r3d_200"]),
                                         ("ir_csn50", ["ir_csn_50"]), ("mtnet_xxs", ["mtnet_xs", "mtnet_xxl"])])
def test_unknown_names_raise_one_line_with_close_matches(name: str, hints: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        network.create_model(name)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"unknown network '{name}'; did you mean: ")
    listed = message.split("did you mean: ")[1].split(" (")[0].split(", ")
    assert set(hints) <= set(listed) and set(listed) <= set(network.list_models()) and len(listed) <= 5
    assert f"all {len(network.list_models())} names" in message


def test_unknown_name_without_close_match_has_no_hint() -> None:
    with pytest.raises(ValueError) as err:
        network.create_model("resnet50")
    assert "did you mean" not in str(err.value) and "network.list_models()" in str(err.value)


def test_duplicate_registration_raises_and_keeps_the_original() -> None:
    before = network.list_models()

    def R3D_18(**kw):  # noqa: ANN003, ANN202, N802  (names are case-insensitive: this clashes with r3d_18)
        raise AssertionError("must never be registered")

    with pytest.raises(ValueError, match=r"model 'r3d_18' is registered twice \(network.srtg_resnet and "):
        register_model(R3D_18)
    assert network.list_models() == before and registry._MODELS["r3d_18"] is srtg_resnet.r3d_18


def test_a_new_registration_is_listed_and_built() -> None:
    def tiny_registry_probe(num_classes: int = 400, **kw) -> nn.Module:  # noqa: ANN003
        return nn.Linear(2, num_classes)

    register_model(tiny_registry_probe)
    try:
        assert "tiny_registry_probe" in network.list_models()
        assert network.create_model("Tiny_Registry_Probe", num_classes=7).out_features == 7
    finally:
        del registry._MODELS["tiny_registry_probe"]


def test_get_symbol_returns_model_and_the_mfnet_input_config(caplog: pytest.LogCaptureFixture) -> None:
    with torch.device("meta"), caplog.at_level(logging.INFO, logger="network.registry"):
        model, conf = network.get_symbol("srtg_r2plus1d_18", num_classes=51, print_net=True)
    assert model.fc.out_features == 51 and len(_sr_modules(model)) == 8
    assert conf["mean"] == pytest.approx([0.48627, 0.45882, 0.40784], abs=1e-5)
    assert conf["std"] == pytest.approx([0.234824] * 3, abs=1e-6)
    assert "Squeeze_and_Recursion" in caplog.text and "Network Architecture" in caplog.text


@pytest.mark.parametrize("name, order, mean", [("tv_r3d_18", "RGB", 0.43216), ("srtg_kr_r3d_18", "RGB", 0.4345),
                                               ("r3d_18", "BGR", 124 / 255)])
def test_get_symbol_gives_the_input_convention_of_the_model_it_builds(name: str, order: str, mean: float) -> None:
    """A network of public weights is fed its publisher's mean/std and channel order, not the original's."""
    with torch.device("meta"):
        model, conf = network.get_symbol(name, num_classes=5)
    spec = model.input_spec
    assert (spec.channel_order, spec.mean[0]) == (order, pytest.approx(mean))
    assert conf == {"mean": list(spec.mean), "std": list(spec.std), "channel_order": order}


@pytest.mark.parametrize("kwargs", [{"gates": True}, {"place": "mid"}, {"recurrent": "gru"}])
def test_plain_models_reject_sr_options(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="only apply with recursion=True"):
        _on_meta("r3d_18", **kwargs)


def test_srtg_options_reach_every_sr_block() -> None:
    gated = _on_meta("srtg_r3d_18", gates=True, recurrent="gru", place="mid")
    srs = [m for m in gated.modules() if isinstance(m, Squeeze_and_Recursion)]
    assert len(srs) == 8 and all(m.gate and isinstance(m.rnn, nn.GRU) for m in srs)
    assert all(b.place == "mid" for _, b in _blocks(gated))
    assert not any(".sar.lstm." in k for k in gated.state_dict()) and any(".sar.gru." in k for k in
                                                                         gated.state_dict())
    with pytest.raises(ValueError, match="SR place 'bottom' is not supported"):
        _on_meta("srtg_r3d_50", place="bottom")


def test_build_model_passes_gate_options_to_srtg_networks_only() -> None:
    with torch.device("meta"):
        plain = network.build_model("r3d_18", num_classes=5)
        gated = network.build_model("SRTG_r3d_18", num_classes=5, gates=True, recurrent="gru")
        ungated = network.build_model("srtg_r3d_18", num_classes=5, gates=False, recurrent="gru")
    assert _sr_modules(plain) == [] and plain.fc.out_features == 5
    srs = [m for m in gated.modules() if isinstance(m, Squeeze_and_Recursion)]
    assert len(srs) == 8 and all(m.gate and m.recurrent == "gru" for m in srs)
    # gates=False: the gate's options are ignored, the run gets the default SR blocks
    assert all(not m.gate and m.recurrent == "lstm" for m in ungated.modules()
               if isinstance(m, Squeeze_and_Recursion))
    with pytest.raises(ValueError, match=r"^--gates True needs an srtg_\* network, not 'r3d_18'$"):
        network.build_model("r3d_18", num_classes=5, gates=True)
