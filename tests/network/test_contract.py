"""The model contract (network/contract.py): get_classifier, reset_classifier, forward_features on every family."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from network import build_model, create_model
from network.contract import classifier_of


@pytest.mark.parametrize("name,shape", [("r3d_18", (2, 3, 4, 32, 32)), ("srtg_r2plus1d_18", (2, 3, 4, 32, 32)),
                                        ("ir_csn_50", (2, 3, 4, 32, 32)), ("mtnet_xs", (2, 3, 4, 48, 48))])
def test_classifier_and_features(name, shape):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).eval()
    head = model.get_classifier()
    assert isinstance(head, nn.Linear) and head is model.fc and model.num_classes == 7
    x = torch.randn(shape)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, head.in_features)
        assert torch.allclose(head(features), model(x), atol=1e-6)
        model.reset_classifier(3)
        assert model.get_classifier() is model.fc and model(x).shape == (2, 3)
    assert model.get_classifier() is not head and classifier_of(model) is model.fc


def test_classifier_of_other_modules():
    plain = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    assert classifier_of(plain) is plain[2] and classifier_of(nn.ReLU()) is None


def test_build_model_passes_gates_only_to_srtg():
    assert build_model("srtg_r3d_18", 5, gates=True).num_classes == 5
    with pytest.raises(ValueError, match="--gates True needs an srtg_\\* network, not 'r3d_18'"):
        build_model("r3d_18", 5, gates=True)
