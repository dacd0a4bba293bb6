"""Data: SQLite frame store, label CSVs, converters, synthetic set, clip reading and loaders.

Public names are resolved lazily, so ``import data`` (and the converter/checker CLIs) do not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "DatasetSpec": "data.catalog.spec", "DatasetPaths": "data.catalog.spec",
    "VideoRecord": "data.catalog.labels", "load_records": "data.catalog.labels",
    "SYNTHETIC_SPEC": "data.prep.synthetic",
    "VideoIter": "data.pipeline.video_iterator",
    "build_loaders": "data.pipeline.loaders",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'data' has no attribute '{name}'")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
