"""Optional TensorBoard scalar logging (``--tensorboard``): the same scalars as the result CSVs.

Uses ``torch.utils.tensorboard`` when the ``tensorboard`` package is installed; otherwise every call is a no-op
after one warning, so training never fails because of it.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class TensorboardLogger:
    """Writes scalars as ``<prefix>/<name>`` at a global step into event files under ``log_dir``."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415  (optional package)
        except ImportError:
            logger.warning("--tensorboard: the 'tensorboard' package is not installed (pip install tensorboard); "
                           "TensorBoard logging is off")
            return
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    @property
    def enabled(self) -> bool:
        """True when events are being written."""
        return self._writer is not None

    def log_scalars(self, step: int, values: Mapping[str, float], prefix: str = "") -> None:
        """Log each number in ``values`` as ``<prefix>/<name>`` at ``step``; None values are skipped."""
        if self._writer is None:
            return
        for name, value in values.items():
            if value is None:
                continue
            tag = f"{prefix}/{name}" if prefix else name
            self._writer.add_scalar(tag, float(value), global_step=int(step))
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (safe to call twice)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
