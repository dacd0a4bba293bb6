"""Every constructor of the original (reference JSON) builds with the original's state_dict keys, shapes,
dtypes and parameter count. Built on the meta device, so even the 1-billion-parameter ones cost nothing."""
from __future__ import annotations

import pytest
import torch
from reference_data import original_models

import network

NAMES = sorted(original_models()["models"])


@pytest.mark.parametrize("name", NAMES)
def test_keys_shapes_dtypes_and_params_match_the_original(name: str, reference: dict) -> None:
    ref = reference["models"][name]
    with torch.device("meta"):
        model = network.create_model(name, num_classes=ref["num_classes"])
    ours = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    theirs = {k: (shape, dtype) for k, shape, dtype in ref["state_dict"]}
    assert sorted(set(ours) - set(theirs)) == [] and sorted(set(theirs) - set(ours)) == []
    assert {k: v for k, v in ours.items() if v != theirs[k]} == {}
    assert sum(p.numel() for p in model.parameters()) == ref["param_count"]


def test_registry_covers_every_reference_name(reference: dict) -> None:
    assert {n.lower() for n in reference["models"]} <= set(network.list_models())


def test_fc_width_follows_num_classes(reference: dict) -> None:
    """All variants with num_classes=k differ by 513*(k-400) parameters (the fc layer)."""
    with torch.device("meta"):
        model = network.create_model("srtg_r3d_18", num_classes=101)
    assert sum(p.numel() for p in model.parameters()) == reference["models"]["srtg_r3d_18"]["param_count"] - 513 * 299
