"""The checkpoints of a results folder: which files are written, kept, pointed to, and what a save failure says.

Every save writes one file atomically (``<network>_ep-XXXX.pth`` when ``--save-frequency`` is due, else
``<network>_last.pth``) and hard-links the others to it (``_last`` always, ``_best`` when validation top-1
improved), then rewrites ``latest`` (the name of the newest complete checkpoint) and removes numbered
checkpoints beyond ``--keep-checkpoints``. A failing save (disk full, read-only folder) becomes one
:class:`CheckpointSaveError` line naming the folder and its free space; the previous files are untouched.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.nn as nn

from data.store.atomic import TMP_INFIX, atomic_path, atomic_write_text, is_temp_name
from train.results.checkpoint import (
    LATEST_NAME,
    best_path,
    checkpoint_path,
    last_path,
    list_checkpoints,
    load_checkpoint_file,
    optimizer_name,
    position_of,
    save_checkpoint,
)
from train.results.lock import LOCK_NAME, TAKEOVER_NAME, pid_alive

log = logging.getLogger(__name__)

PREVIOUS_PREFIX = "previous-"


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written; the run stops (a one-line user error)."""


def free_bytes(folder: str | Path) -> int:
    """Free bytes of the file system holding ``folder`` (0 if it cannot be asked)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def estimate_bytes(model: nn.Module, buffers: int = 1, ema: bool = False) -> int:
    """Size of a checkpoint of ``model``: its state_dict, ``buffers`` optimiser tensors per parameter (SGD's
    momentum: 1, AdamW's moments: 2) and, with ``ema``, the averaged state_dict (``--ema-decay``), + 5%."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return int((state * (2 if ema else 1) + params * buffers) * 1.05) + 65536


def check_writable(folder: str | Path, need: int) -> None:
    """Before the first epoch: ``folder`` accepts a file and has ``need`` bytes free, else one-line error."""
    folder = Path(folder)
    try:
        atomic_write_text(folder / ".write-test", "ok\n")
        (folder / ".write-test").unlink()
    except OSError as exc:
        raise CheckpointSaveError(f"{folder}: not writable ({exc.strerror or exc}); checkpoints cannot be saved, "
                                  "fix the permissions or choose another --model-dir") from None
    free = free_bytes(folder)
    if free < need:
        raise CheckpointSaveError(f"{folder}: {_mb(free)} free, but two checkpoints need about {_mb(need)}; free "
                                  "some space or choose another --model-dir")


def _link(src: Path, dst: Path) -> None:
    """``dst`` becomes the same file as ``src`` (a hard link, a copy where links are not supported), atomically."""
    with atomic_path(dst, fsync=False) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


class Checkpoints:
    """Writes the checkpoints of one run (rank 0) into ``folder``; ``meta`` are `save_checkpoint`'s keywords
    ``network``, ``classes``, ``config``, ``dataset``."""

    def __init__(self, folder: str | Path, network: str, keep: int, meta: Mapping[str, Any],
                 best_top1: float | None = None) -> None:
        self.folder, self.network, self.keep, self.meta = Path(folder), network, int(keep), dict(meta)
        self.best_top1 = best_top1

    def save(self, model: nn.Module, step: Any, epoch: int, *, numbered: bool,
             position: Mapping[str, Any] | None = None, val_top1: float | None = None) -> Path:
        """Save the training state after ``epoch`` completed epochs (+ ``position`` inside the next one)."""
        folder, network = self.folder, self.network
        primary = checkpoint_path(folder, network, epoch) if numbered else last_path(folder, network)
        improved = val_top1 is not None and (self.best_top1 is None or val_top1 > self.best_top1)
        best = val_top1 if improved else self.best_top1
        try:
            ema = getattr(step, "ema", None)  # --ema-decay's averaged copy (train.engine.ema), None when off
            save_checkpoint(primary, model, epoch, step.optimizer, step.scaler, step.schedule, position=position,
                            **self.meta, metrics={"val_top1": val_top1, "best_val_top1": best},
                            ema_state=ema.state_dict() if ema is not None else None)
            if numbered:
                _link(primary, last_path(self.folder, self.network))
            if improved:
                _link(primary, best_path(self.folder, self.network))
                self.best_top1 = best
            atomic_write_text(self.folder / LATEST_NAME, primary.name + "\n", fsync=True)
        except (OSError, RuntimeError) as exc:
            reason = getattr(exc, "strerror", None)
            if not reason:  # torch.save reports a full disk as RuntimeError "... file write failed"
                moments = 2 if optimizer_name(step.optimizer) == "adamw" else 1
                full = free_bytes(self.folder) < estimate_bytes(model, moments, ema is not None)
                reason = "No space left on device" if full else (str(exc).splitlines() or [exc.__class__.__name__])[0]
            pointer = self.folder / LATEST_NAME
            kept = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else "none"
            free = _mb(free_bytes(self.folder))
            raise CheckpointSaveError(f"{self.folder}: saving {primary.name} failed ({reason}; {free} "
                                      f"free); the previous checkpoint ({kept}) is intact; free some space or "
                                      "use another --model-dir, then resume with --resume-epoch auto") from None
        self.prune()
        return primary

    def prune(self) -> None:
        """Delete numbered checkpoints beyond the newest ``keep`` (0: keep all)."""
        if self.keep <= 0:
            return
        for epoch in list_checkpoints(self.folder, self.network)[:-self.keep]:
            path = checkpoint_path(self.folder, self.network, epoch)
            path.unlink(missing_ok=True)
            log.info("Removed `%s' (--keep-checkpoints %d)", path, self.keep)


def holds_run(folder: str | Path) -> list[str]:
    """Names of the files of an earlier run in ``folder``: checkpoints, result CSVs, the ``latest`` pointer."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and
                  (p.suffix == ".pth" or p.name == LATEST_NAME or "_results_s" in p.name) and not is_temp_name(p.name))


def move_aside(folder: str | Path, names: list[str] | None = None) -> Path:
    """``--overwrite``: move every entry of ``folder`` (but the lock and earlier ``previous-*`` folders), or only
    ``names``, into ``folder/previous-<time>/``; returns that folder. Nothing is deleted."""
    folder = Path(folder)
    aside = folder / f"{PREVIOUS_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while aside.exists():
        n += 1
        aside = folder / f"{PREVIOUS_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    aside.mkdir()
    for entry in folder.iterdir():
        if names is not None and entry.name not in names:
            continue
        if entry.name not in (LOCK_NAME, TAKEOVER_NAME) and not entry.name.startswith(PREVIOUS_PREFIX):
            entry.rename(aside / entry.name)
    return aside


def _csv_start(name: str) -> int | None:
    """The start epoch of a ``<split>_results_s<start>[_r<n>].csv`` or ``gates_s<start>[_r<n>].csv`` name (None for
    other names)."""
    match = re.fullmatch(r"(?:(?:train|val)_results|gates)_s(\d+)(?:_r\d+)?\.csv", name)
    return int(match.group(1)) if match else None


def files_beyond(folder: str | Path, network: str, epoch: int, iteration: int) -> list[str]:
    """The files of ``folder`` written after the training state ``(epoch, iteration)``: numbered checkpoints of
    later epochs, ``_last``/``_best`` holding a later position, and the result CSVs of runs that started after
    it (or at it, for a resume from an epoch end). Resuming there must not mix them with its own files."""
    folder = Path(folder)
    later = [checkpoint_path(folder, network, e).name for e in list_checkpoints(folder, network) if e > epoch]
    for path in (last_path(folder, network), best_path(folder, network)):
        if path.is_file():
            try:
                saved = position_of(load_checkpoint_file(path))
            except ValueError:
                continue  # a damaged file is reported by the resume that tries it
            if saved > (epoch, iteration):
                later.append(path.name)
    for entry in folder.iterdir() if folder.is_dir() else []:
        start = _csv_start(entry.name)
        if start is not None and (start > epoch or (start == epoch and not iteration)):
            later.append(entry.name)
    return sorted(later)


def remove_temp_files(folder: str | Path) -> list[str]:
    """Remove the partial files (``.<name>.tmp-<pid>``) that this process or a dead one left in ``folder``."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if not is_temp_name(p.name):
            continue
        pid = p.name.rsplit(TMP_INFIX, 1)[1]
        if pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def unique_path(path: str | Path) -> Path:
    """``path`` if it does not exist, else ``<stem>_r2<suffix>``, ``_r3``, … (never overwrite a result file)."""
    path = Path(path)
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_r{n}{path.suffix}")
    return candidate
