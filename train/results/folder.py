"""Claiming a results folder for one run: the lock, where to start, and no silent overwrite of an earlier run.

Rank 0 calls :func:`claim` before logging opens ``train.log``: a folder in use by a live run, or holding an
earlier run's checkpoints/CSVs while this run would start from scratch, is a one-line
:class:`~train.results.lock.FolderBusyError` and nothing in the folder is touched. ``--overwrite True`` moves the
earlier files into ``previous-<time>/`` (nothing is deleted); ``--resume-epoch auto`` continues them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from train.config import RunConfig
from train.results.checkpoint import StartPoint, resolve_start
from train.results.lock import FolderBusyError, RunLock
from train.results.retention import holds_run, move_aside, remove_temp_files, unique_path


@dataclass
class Claim:
    """What :func:`claim` did: the held lock, the start point, and notes to log once logging is set up."""

    lock: RunLock
    start: StartPoint
    notes: list[str]


def claim(cfg: RunConfig, out_dir: Path) -> Claim:
    """Lock ``out_dir``, decide the start, refuse or move aside an earlier run, write the configuration JSON
    (``config.json``, or ``config_s<start>.json`` for a resumed run)."""
    m = cfg.model
    lock = RunLock(out_dir).acquire()
    try:
        notes = [f"removed partial file {name} of a killed run" for name in remove_temp_files(out_dir)]
        start = resolve_start(m.pretrained_3d, m.resume_epoch, out_dir, m.network)
        earlier = holds_run(out_dir) if start.mode != "resume" else []
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
