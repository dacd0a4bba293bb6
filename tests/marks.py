"""Which parametrised cases the quick subset (``pytest -m "not slow"``) keeps: one representative per family or
source; the whole suite (``python -m pytest -q``) runs every case."""
from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import pytest


def slow_except(values: Iterable[Any], quick: Collection[Any]) -> list[Any]:
    """``values`` as parametrize cases, those not in ``quick`` marked slow (a tuple is one case of several
    arguments)."""
    cases = []
    for value in values:
        if value in quick:
            cases.append(value)
        else:
            cases.append(pytest.param(*value if isinstance(value, tuple) else (value,), marks=pytest.mark.slow))
    return cases
