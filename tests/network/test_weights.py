"""Checkpoint loading on real models: what the report lists, what its one line says, what is really copied."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import network
from network.srtg import Squeeze_and_Recursion
from network.weights import LoadReport, load_partial, strip_wrappers, unwrap_model, unwrap_state_dict


@pytest.fixture(scope="module")
def plain() -> nn.Module:
    torch.manual_seed(0)
    return network.create_model("ir_csn_50", num_classes=10)


@pytest.fixture(scope="module")
def srtg() -> nn.Module:
    torch.manual_seed(1)
    return network.create_model("srtg_ir_csn_50", num_classes=10)


def _equal_where_loaded(target: nn.Module, source: dict[str, torch.Tensor], keys: list[str]) -> bool:
    own = target.state_dict()
    return all(torch.equal(own[k], source[k]) for k in keys)


def _sr_block_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, Squeeze_and_Recursion)]


def test_strip_wrappers_removes_leading_prefixes_only() -> None:
    assert strip_wrappers("module._orig_mod.layer1.0.conv1.0.weight") == "layer1.0.conv1.0.weight"
    assert strip_wrappers("_orig_mod.module.module.fc.bias") == "fc.bias"
    assert strip_wrappers("fc.module.weight") == "fc.module.weight"
    assert strip_wrappers("modules.fc.weight") == "modules.fc.weight"


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_original_checkpoint_file_loads_everything(plain: nn.Module, tmp_path: Path, prefix: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The original saved {'epoch', 'state_dict' (DataParallel keys), 'optimizer'}; compile adds _orig_mod."""
    path = tmp_path / "ir_csn_50_ep-0003.pth"
    source = plain.state_dict()
    torch.save({"epoch": 3, "state_dict": {prefix + k: v for k, v in source.items()}, "optimizer": {}}, path)
    torch.manual_seed(5)
    fresh = network.create_model("ir_csn_50", num_classes=10)
    assert not torch.equal(fresh.stem[0].weight, plain.stem[0].weight)
    with caplog.at_level(logging.INFO, logger="network.weights"):
        report = load_partial(fresh, torch.load(path, map_location="cpu", weights_only=True))
    assert report.loaded == list(source) and report.unexpected == report.missing == report.mismatched == []
    assert _equal_where_loaded(fresh, source, list(source))
    lines = [r.getMessage() for r in caplog.records if r.name == "network.weights"]
    assert lines == [f"load_partial: loaded {len(source)} tensors, skipped 0 (shape mismatch), 0 unexpected, "
                     "0 missing"]


def test_new_head_is_a_shape_mismatch_left_untouched(plain: nn.Module) -> None:
    other = network.create_model("ir_csn_50", num_classes=400)  # fine-tuning: a new head
    fc_before = other.fc.weight.detach().clone()
    source = plain.state_dict()
    report = load_partial(other, {f"module.{k}": v for k, v in source.items()}, log=None)
    assert report.mismatched == ["fc.weight", "fc.bias"] and report.missing == [] and report.unexpected == []
    assert report.loaded == [k for k in source if not k.startswith("fc.")]
    assert torch.equal(other.fc.weight, fc_before) and _equal_where_loaded(other, source, report.loaded)
    assert report.summary() == (f"loaded {len(source) - 2} tensors, skipped 2 (shape mismatch), 0 unexpected, "
                                "0 missing (mismatch e.g. fc.weight)")


def test_srtg_from_plain_backbone_names_every_fresh_sr_block(plain: nn.Module) -> None:
    torch.manual_seed(2)
    model = network.create_model("srtg_ir_csn_50", num_classes=10)
    lstm_before = {k: v.clone() for k, v in model.state_dict().items() if ".sar." in k}
    source = plain.state_dict()
    report = load_partial(model, source, log=None)
    blocks = _sr_block_names(model)
    assert len(blocks) == 16 and report.fresh_sr_blocks == sorted(blocks)
    assert report.missing == list(lstm_before) and report.loaded == list(source)
    assert report.unexpected == report.mismatched == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in lstm_before.items())
    assert _equal_where_loaded(model, source, report.loaded)
    # missing SR weights are explained by the fresh-block clause, not listed as an example
    assert report.summary() == (
        f"loaded {len(source)} tensors, skipped 0 (shape mismatch), 0 unexpected, {len(lstm_before)} missing; "
        "16 SR blocks start fresh (checkpoint has no recurrent weights for them: layer1.0.sar, layer1.1.sar, "
        "layer1.2.sar, layer2.0.sar, ... (16 in all))")


def test_a_block_with_some_sr_weights_is_not_fresh(srtg: nn.Module) -> None:
    source = {k: v for k, v in srtg.state_dict().items() if not k.startswith("layer3.5.sar.lstm.")}
    source.pop("layer4.2.sar.lstm.bias_hh_l1")  # one tensor short: the block still got weights
    report = load_partial(network.create_model("srtg_ir_csn_50", num_classes=10), source, log=None)
    assert report.fresh_sr_blocks == ["layer3.5.sar"]
    assert sorted(report.missing) == sorted([k for k in srtg.state_dict() if k.startswith("layer3.5.sar.")]
                                            + ["layer4.2.sar.lstm.bias_hh_l1"])
    assert "; 1 SR blocks start fresh (checkpoint has no recurrent weights for them: layer3.5.sar)" in \
        report.summary()


def test_gru_checkpoint_into_lstm_model_is_unexpected_plus_fresh_blocks(srtg: nn.Module) -> None:
    gru = network.create_model("srtg_ir_csn_50", num_classes=10, recurrent="gru").state_dict()
    report = load_partial(network.create_model("srtg_ir_csn_50", num_classes=10), gru, log=None)
    assert report.unexpected == [k for k in gru if ".sar.gru." in k] and len(report.unexpected) == 16 * 8
    assert report.missing == [k for k in srtg.state_dict() if ".sar.lstm." in k]
    assert len(report.fresh_sr_blocks) == 16 and report.mismatched == []
    assert "128 unexpected, 128 missing (unexpected e.g. layer1.0.sar.gru.weight_ih_l0); 16 SR blocks" in \
        report.summary()


def test_plain_model_from_srtg_checkpoint_lists_the_sr_weights_as_unexpected(srtg: nn.Module) -> None:
    source = srtg.state_dict()
    report = load_partial(network.create_model("ir_csn_50", num_classes=10), source, log=None)
    assert report.unexpected == [k for k in source if ".sar." in k] and len(report.unexpected) == 128
    assert report.missing == [] and report.fresh_sr_blocks == [] and report.mismatched == []
    assert report.summary().endswith("128 unexpected, 0 missing (unexpected e.g. layer1.0.sar.lstm.weight_ih_l0)")


def test_other_architecture_partitions_every_key() -> None:
    """r3d_18 weights into r2plus1d_18: common keys of other shapes are mismatched, the rest missing/unexpected."""
    source, target = network.create_model("r3d_18").state_dict(), network.create_model("r2plus1d_18")
    own = target.state_dict()
    report = load_partial(target, source, log=None)
    assert sorted(report.loaded + report.mismatched + report.unexpected) == sorted(source)
    assert sorted(report.loaded + report.mismatched + report.missing) == sorted(own)
    assert "layer1.0.conv1.0.0.weight" in report.mismatched  # 3x3x3 there, 1x3x3 here
    assert "layer1.0.conv1.0.3.weight" in report.missing and "fc.weight" in report.loaded
    assert all(source[k].shape == own[k].shape for k in report.loaded)
    assert all(source[k].shape != own[k].shape for k in report.mismatched)
    assert f"loaded {len(report.loaded)} tensors, skipped {len(report.mismatched)} (shape mismatch)" in \
        report.summary()
    assert "(mismatch e.g. " in report.summary() and "; missing e.g. " in report.summary()


def test_non_tensor_entry_is_a_mismatch(plain: nn.Module) -> None:
    source = dict(plain.state_dict())
    source["fc.bias"] = [0.0] * 10
    report = load_partial(network.create_model("ir_csn_50", num_classes=10), source, log=None)
    assert report.mismatched == ["fc.bias"] and len(report.loaded) == len(source) - 1


def test_empty_report_summary() -> None:
    assert LoadReport().summary() == "loaded 0 tensors, skipped 0 (shape mismatch), 0 unexpected, 0 missing"


def test_unwrap_state_dict_of_wrapped_models(plain: nn.Module) -> None:
    keys = list(plain.state_dict())
    compiled = torch.compile(plain)  # wrapping only: nothing is compiled until it is called
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    for wrapped in (nn.DataParallel(plain), compiled, nn.DataParallel(compiled)):
        assert unwrap_model(wrapped) is plain
        state = unwrap_state_dict(wrapped)
        assert list(state) == keys and state["fc.weight"].data_ptr() == plain.fc.weight.data_ptr()
