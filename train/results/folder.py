"""Claiming a results folder for one run: the lock, where to start, and no silent overwrite of an earlier run.

Rank 0 calls :func:`claim` before logging opens ``train.log``: a folder in use by a live run, or holding an
earlier run's checkpoints/CSVs while this run would start from scratch, is a one-line
:class:`~train.results.lock.FolderBusyError` and nothing in the folder is touched. ``--overwrite True`` moves the
earlier files into ``previous-<time>/`` (nothing is deleted); ``--resume-epoch auto`` continues them, or, when
they hold no checkpoint (a run killed or failed before its first one), moves them aside and starts. A resume
from an earlier state than the folder's newest (``--resume-epoch 1`` after epoch 3) moves the later files aside
first, so the folder never mixes two branches and ``auto`` later continues the branch that wrote last. A run
whose start is at or past ``--end-epoch`` is complete: :attr:`Claim.finished` says so and nothing is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.store.atomic import atomic_write_text
from train.config import RunConfig
from train.results.checkpoint import LATEST_NAME, StartPoint, best_path, load_checkpoint_file, resolve_start
from train.results.lock import FolderBusyError, RunLock
from train.results.retention import files_beyond, holds_run, move_aside, remove_temp_files, unique_path


@dataclass
class Claim:
    """What :func:`claim` did: the held lock, the start point, and notes to log once logging is set up."""

    lock: RunLock
    start: StartPoint
    notes: list[str]
    finished: str | None = None  # the one line saying the run is already complete (nothing else was done)


def claim(cfg: RunConfig, out_dir: Path) -> Claim:
    """Lock ``out_dir``, decide the start, refuse or move aside an earlier run, write the configuration JSON
    (``config.json``, or ``config_s<start>.json`` for a resumed run)."""
    m = cfg.model
    lock = RunLock(out_dir).acquire()
    try:
        notes = [f"removed partial file {name} of a killed run" for name in remove_temp_files(out_dir)]
        start = resolve_start(m.pretrained_3d, m.resume_epoch, out_dir, m.network)
        if start.mode == "resume" and start.epoch >= cfg.schedule.end_epoch:
            return Claim(lock, start, notes, finished_line(out_dir, m.network, start, cfg.schedule.end_epoch))
        earlier = holds_run(out_dir) if start.mode != "resume" else []
        if earlier and m.resume_epoch == "auto":  # nothing to continue: start, keep them
            aside = move_aside(out_dir)
            notes.append(f"--resume-epoch auto: no checkpoint to continue; moved the {len(earlier)} files of a run "
                         f"that stopped before its first one into {aside}")
            earlier = []
        if start.mode == "resume":
            later = files_beyond(out_dir, m.network, start.epoch, start.iteration)
            if later:
                aside = move_aside(out_dir, later)
                if start.path is not None and start.path.parent.resolve() == out_dir.resolve():
                    atomic_write_text(out_dir / LATEST_NAME, start.path.name + "\n")
                notes.append(f"resuming from {start.path.name}: moved the {len(later)} files written after it "
                             f"({', '.join(later[:4])}{', ...' if len(later) > 4 else ''}) into {aside}")
        if earlier and not cfg.output.overwrite:
            shown = ", ".join(earlier[:3]) + (", ..." if len(earlier) > 3 else "")
            raise FolderBusyError(f"{out_dir}: holds an earlier run ({len(earlier)} files: {shown}); continue it "
                                  "with --resume-epoch auto, start over with --overwrite True (moves them into "
                                  "previous-<time>/), or use --run-name NAME for a new folder")
        if earlier:
            aside = move_aside(out_dir)
            notes.append(f"--overwrite: moved the earlier run's {len(earlier)} checkpoint/CSV files (and its log) "
                         f"into {aside}")
        name = "config.json" if start.mode != "resume" else f"config_s{start.epoch:04d}.json"
        cfg.save(unique_path(out_dir / name))
        return Claim(lock, start, notes)
    except BaseException:
        lock.release()
        raise


def finished_line(out_dir: Path, network: str, start: StartPoint, end_epoch: int) -> str:
    """One line for a resume at or past ``--end-epoch``: the run is complete, its best checkpoint and top-1."""
    best, top1 = best_path(out_dir, network), None
    for path in (best, start.path):
        if path is not None and path.is_file():
            try:
                metrics = load_checkpoint_file(path).get("metrics") or {}
            except ValueError:
                continue
            top1 = metrics.get("val_top1") if path == best else metrics.get("best_val_top1")
            if top1 is not None:
                break
    shown = f"{best.name}, val top-1 {100 * float(top1):.2f}%" if best.is_file() and top1 is not None else (
        f"no {best.name} (no validation improved)" if not best.is_file() else f"{best.name}")
    return (f"{out_dir}: training is complete ({start.path.name if start.path else 'checkpoint'} holds epoch "
            f"{start.epoch}, --end-epoch {end_epoch}); best: {shown}. Nothing was written; raise --end-epoch "
            "to train further")
