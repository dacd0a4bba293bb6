"""Checkpoints (atomic, original names and keys), the one place that decides where training starts, CSV results.

File name and keys are the original's: ``<model_dir>/<network>_ep-XXXX.pth`` (XXXX = completed epochs) holding
``{'epoch', 'state_dict', 'optimizer'}``, plus ``scaler``, ``scheduler``, ``rng``, ``network``,
``num_classes``, ``classes``, ``args``. Divergences (spec bugs 27, 38): the original saved the
``DataParallel``-wrapped state_dict (``module.`` keys) non-atomically and its resume silently loaded nothing
(keyword mismatch); here the state_dict is unwrapped, the file is written to a temp file in the same folder,
fsynced and renamed (a kill at any moment leaves the previous checkpoint intact), and resume restores model,
optimiser, AMP scaler, lr schedule, epoch and RNG states.
"""
from __future__ import annotations

import csv
import logging
import pickle
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn

from data.atomic import atomic_write
from network.weights import load_partial, unwrap_model, unwrap_state_dict

log = logging.getLogger(__name__)

RESULT_FIELDS = ("Epoch", "Top1", "Top5", "Loss", "LR", "Samples", "Skipped", "Seconds")


def checkpoint_path(model_dir: str | Path, network: str, epoch: int) -> Path:
    """``<model_dir>/<network>_ep-<epoch:04d>.pth`` (the original's ``get_checkpoint_path``)."""
    return Path(model_dir) / f"{network}_ep-{epoch:04d}.pth"


def list_checkpoints(model_dir: str | Path, network: str) -> list[int]:
    """Completed-epoch numbers of the ``<network>_ep-XXXX.pth`` files in ``model_dir``, sorted."""
    pattern = re.compile(rf"^{re.escape(network)}_ep-(\d{{4,}})\.pth$")
    folder = Path(model_dir)
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name)))


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to a temp file next to ``path``, flush + fsync, then ``os.replace`` onto ``path``.

    If anything fails the temp file is removed and an existing ``path`` is left untouched.
    """
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states in a ``weights_only``-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                                       float(cached))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (missing parts are left as they are)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _plain(value: Any) -> Any:
    """Arguments as plain Python values (Paths → str) so the checkpoint loads with ``weights_only=True``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def save_checkpoint(path: str | Path, model: nn.Module, epoch: int, optimizer: torch.optim.Optimizer | None = None,
                    scaler: Any = None, scheduler: Any = None, rng: Any = None, network: str = "",
                    classes: list[str] | None = None, args: Mapping[str, Any] | None = None) -> Path:
    """Write the checkpoint dict (unwrapped state_dict, original keys + extras) atomically to ``path``."""
    bare = unwrap_model(model)
    state = {"epoch": int(epoch), "state_dict": unwrap_state_dict(model)}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    state["rng"] = rng if rng is not None else rng_state()
    state["network"] = network
    head = getattr(bare, "fc", None)
    state["num_classes"] = int(head.out_features) if isinstance(head, nn.Linear) else len(classes or [])
    state["classes"] = list(classes or [])
    state["args"] = _plain(dict(args or {}))
    atomic_save(state, path)
    log.info("Checkpoint saved: `%s'", path)
    return Path(path)


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on CPU with ``weights_only=True``; a bare state_dict is wrapped as ``{'state_dict'}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found (check --pretrained_3d / --resume-epoch / --model-dir)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__}: {first}); "
                         "re-download it or pick another epoch") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    if "state_dict" not in obj:
        obj = {"state_dict": obj}
    return obj


@dataclass(frozen=True)
class StartPoint:
    """Where training starts: ``mode`` is 'scratch', 'pretrained' (weights only) or 'resume' (full state).

    ``epoch`` = completed epochs before the first one this run trains (0 unless resuming).
    """

    mode: str
    epoch: int
    path: Path | None = None


def resolve_start(args: Any, model_dir: str | Path, network: str) -> StartPoint:
    """Decide where to start from the arguments; every caller asks this function.

    1. ``--pretrained_3d FILE`` without ``--resume-epoch``: initialise from FILE (non-strict), epoch 0.
    2. ``--pretrained_3d FILE --resume-epoch N``: the original README's resume example passes both; we resume
       the full state from FILE and continue after N completed epochs (the README's ``ep-0020.pth`` with
       ``--resume-epoch 21`` therefore skips an epoch, exactly as asked; a warning says so).
    3. ``--resume-epoch N`` (N ≥ 1): resume from ``<model_dir>/<network>_ep-000N.pth``.
    4. otherwise (``--resume-epoch`` -1 or 0): from scratch.
    """
    pretrained = getattr(args, "pretrained_3d", None)
    resume_epoch = int(getattr(args, "resume_epoch", -1) if getattr(args, "resume_epoch", None) is not None else -1)
    if pretrained:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: --pretrained_3d file not found (give the path of a .pth checkpoint)")
        if resume_epoch >= 0:
            return StartPoint("resume", resume_epoch, path)
        return StartPoint("pretrained", 0, path)
    if resume_epoch >= 1:
        path = checkpoint_path(model_dir, network, resume_epoch)
        if not path.is_file():
            found = list_checkpoints(model_dir, network)
            raise FileNotFoundError(f"{path}: no checkpoint for --resume-epoch {resume_epoch} "
                                    f"(found epochs {found or 'none'} in {model_dir}; check --model-dir/--network)")
        return StartPoint("resume", resume_epoch, path)
    return StartPoint("scratch", 0)


def restore(start: StartPoint, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
            scaler: Any = None, scheduler: Any = None) -> dict[str, Any] | None:
    """Apply ``start`` to the training state; returns the loaded checkpoint dict (None from scratch).

    The model always goes through ``network.weights.load_partial`` (strips ``module.``/``_orig_mod.``,
    name + shape filter, one log line of what was skipped). When resuming, the optimiser state is loaded only
    if every model tensor matched (as the original), then the scaler, scheduler and RNG states when present.
    """
    if start.mode == "scratch" or start.path is None:
        log.info("Training from scratch")
        return None
    ckpt = load_checkpoint_file(start.path)
    report = load_partial(model, ckpt["state_dict"], log=log)
    complete = not report.missing and not report.mismatched
    if start.mode == "pretrained":
        log.info("Initialised from `%s' (%s)", start.path, "all tensors matched" if complete else "partial")
        return ckpt
    saved_epoch = ckpt.get("epoch")
    if saved_epoch is not None and int(saved_epoch) != start.epoch:
        log.warning("`%s' holds epoch %s; continuing after epoch %d as asked by --resume-epoch",
                    start.path, saved_epoch, start.epoch)
    parts = ["model"]
    if optimizer is not None and "optimizer" in ckpt and complete:
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
            parts.append("optimiser")
        except (ValueError, KeyError) as exc:
            log.warning("Failed to load optimiser state from `%s' (%s); starting a fresh optimiser", start.path, exc)
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
        parts.append("scaler")
    if scheduler is not None and ckpt.get("scheduler"):
        scheduler.load_state_dict(ckpt["scheduler"])
        parts.append("lr schedule")
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
        parts.append("RNG")
    log.info("Resumed %s from `%s' at epoch %d", " & ".join(parts), start.path, start.epoch)
    return ckpt


class ResultsCsv:
    """Per-epoch results: ``Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds``, flushed after every row."""

    def __init__(self, path: str | Path, fields: tuple[str, ...] = RESULT_FIELDS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=list(fields))
        self._writer.writeheader()
        self._fh.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow(dict(row))
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "ResultsCsv":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
