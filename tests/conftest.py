"""Shared fixtures for the whole suite (CPU only, small threads so parallel runs stay fair)."""
from __future__ import annotations

import pytest
import torch
from reference_data import original_models

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def reference() -> dict:
    return original_models()
