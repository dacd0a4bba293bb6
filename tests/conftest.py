"""Shared fixtures for the whole suite (CPU only, small threads so parallel runs stay fair)."""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).parent / "reference" / "original_models.json.gz"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@lru_cache(maxsize=1)
def original_models() -> dict:
    """The measured facts of the original code (state_dict keys/shapes, params, FLOPs, golden outputs)."""
    with gzip.open(REFERENCE, "rt") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def reference() -> dict:
    return original_models()
