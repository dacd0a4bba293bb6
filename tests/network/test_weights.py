"""Checkpoint loading: wrapper prefixes, name+shape filter, SR blocks missing from plain-backbone checkpoints."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import network
from network.weights import LoadReport, load_partial, strip_wrappers, unwrap_state_dict


@pytest.fixture(scope="module")
def plain() -> nn.Module:
    torch.manual_seed(0)
    return network.create_model("ir_csn_50", num_classes=10)


def _same(a: nn.Module, b: nn.Module, skip: str = "fc.") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sb if k in sa and not k.startswith(skip))


def test_strip_wrappers() -> None:
    assert strip_wrappers("module._orig_mod.layer1.0.conv1.0.weight") == "layer1.0.conv1.0.weight"
    assert strip_wrappers("_orig_mod.module.fc.bias") == "fc.bias"
    assert strip_wrappers("fc.module.weight") == "fc.module.weight"


def test_original_checkpoint_file_loads_with_module_prefix(plain: nn.Module, tmp_path: Path) -> None:
    """The original saved {'epoch', 'state_dict' (DataParallel keys), 'optimizer'}."""
    path = tmp_path / "ir_csn_50_ep-0003.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in plain.state_dict().items()},
                "optimizer": {}}, path)
    fresh = network.create_model("ir_csn_50", num_classes=10)
    report = load_partial(fresh, torch.load(path, map_location="cpu"), log=None)
    assert report.unexpected == report.missing == report.mismatched == []
    assert len(report.loaded) == len(plain.state_dict()) and _same(fresh, plain, skip="-")


def test_shape_mismatch_is_skipped_and_logged_in_one_line(plain: nn.Module, caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    other = network.create_model("ir_csn_50", num_classes=400)  # fine-tuning: a new head
    fc_before = other.fc.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="network.weights"):
        report = load_partial(other, {f"_orig_mod.{k}": v for k, v in plain.state_dict().items()})
    assert report.mismatched == ["fc.weight", "fc.bias"] and report.missing == [] and report.unexpected == []
    assert torch.equal(other.fc.weight, fc_before) and _same(other, plain)
    lines = [r.getMessage() for r in caplog.records if r.name == "network.weights"]
    assert len(lines) == 1 and "\n" not in lines[0] and "skipped 2 (shape mismatch)" in lines[0]


def test_srtg_from_plain_backbone_reports_fresh_sr_blocks(plain: nn.Module) -> None:
    srtg = network.create_model("srtg_ir_csn_50", num_classes=10)
    lstm_before = srtg.layer4[2].sar.lstm.weight_hh_l1.detach().clone()
    report = load_partial(srtg, plain.state_dict(), log=None)
    assert report.unexpected == [] and report.mismatched == []
    assert report.missing and all(".sar.lstm." in k for k in report.missing)
    assert len(report.fresh_sr_blocks) == 16 and report.fresh_sr_blocks[0] == "layer1.0.sar"
    message = report.summary()
    assert "16 SR blocks start fresh" in message and "layer1.0.sar" in message
    assert torch.equal(srtg.layer4[2].sar.lstm.weight_hh_l1, lstm_before) and _same(srtg, plain, skip="-")


def test_unexpected_keys_and_plain_model_from_srtg_checkpoint(plain: nn.Module) -> None:
    srtg = network.create_model("srtg_ir_csn_50", num_classes=10)
    report = load_partial(network.create_model("ir_csn_50", num_classes=10), srtg.state_dict(), log=None)
    assert len(report.unexpected) == 16 * 8 and report.missing == [] and report.fresh_sr_blocks == []
    assert "128 unexpected" in report.summary()


def test_unwrap_state_dict_of_wrapped_models(plain: nn.Module) -> None:
    keys = list(plain.state_dict())
    assert list(unwrap_state_dict(nn.DataParallel(plain))) == keys
    assert list(unwrap_state_dict(torch.compile(plain))) == keys  # wrapping only: nothing is compiled here
    assert isinstance(LoadReport().summary(), str)
