"""The measured facts of the original code (state_dict keys/shapes, params, FLOPs, golden outputs)."""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

REFERENCE = Path(__file__).parent / "reference" / "original_models.json.gz"


@lru_cache(maxsize=1)
def original_models() -> dict:
    """The reference JSON (``tests/reference/original_models.json.gz``), parsed once per process."""
    with gzip.open(REFERENCE, "rt") as fh:
        return json.load(fh)
