"""network/compile.py: the backbone is compiled in place, the recurrent cells stay eager, keys do not change."""
from __future__ import annotations

import pytest
import torch

from network import create_model
from network.compile import compile_backbone, compile_targets


def test_targets_leave_out_every_recurrent_cell():
    model = create_model("srtg_r3d_18", num_classes=5)
    targets = compile_targets(model)
    assert "stem" in targets and "fc" in targets and "layer1.0.conv1" in targets and "layer1.0.conv2" in targets
    assert not any(".sar" in t or t.endswith("sar") for t in targets)
    assert all(not any(isinstance(m, torch.nn.RNNBase) for m in model.get_submodule(t).modules()) for t in targets)
    plain = create_model("r3d_18", num_classes=5)
    assert compile_targets(plain) == [""]  # no recurrent cell: the whole model


@pytest.mark.slow
def test_compiled_model_keeps_keys_and_outputs():
    torch.manual_seed(0)
    model = create_model("srtg_r3d_18", num_classes=5).eval()
    keys = list(model.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        before = model(x)
    assert compile_backbone(model, backend="eager")
    with torch.no_grad():
        after = model(x)
    assert list(model.state_dict()) == keys and torch.allclose(before, after, atol=1e-6)


def test_a_failing_compile_is_one_warning_and_eager(caplog):
    model = create_model("r3d_18", num_classes=5)
    with caplog.at_level("WARNING", logger="network.compile"):
        assert compile_backbone(model, backend="no_such_backend") == []
    assert "--compile:" in caplog.text and "training runs eagerly" in caplog.text
    assert model.eval()(torch.randn(2, 3, 2, 16, 16)).shape == (2, 5)
