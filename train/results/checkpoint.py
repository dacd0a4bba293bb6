"""Checkpoints (atomic, original names and keys), the one place that decides where training starts, CSV results.

File name and keys are the original's: ``<model_dir>/<network>_ep-XXXX.pth`` (XXXX = completed epochs) holding
``{'epoch', 'state_dict', 'optimizer'}``, plus ``scaler``, ``scheduler``, ``rng``, ``network``,
``num_classes``, ``classes``, ``config``, ``dataset``. The state_dict is unwrapped (no ``module.``), the file
is written atomically (`data.store.atomic`: a kill at any moment leaves the previous checkpoint intact), and resume
restores model, optimiser, AMP scaler, lr schedule, position and RNG states (docs/differences.md#29, #30). Beside
the original names a folder holds ``<network>_last.pth`` (the newest state, mid-epoch after a preemption, with
``position``), ``<network>_best.pth`` (best validation top-1) and ``latest`` (a text file naming the newest
complete checkpoint); see `train.results.retention` (docs/differences.md#38).
"""
from __future__ import annotations

import csv
import hashlib
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from data.store.atomic import atomic_write
from network.config import input_spec_of
from network.contract import classifier_of
from network.pretrained import import_public
from network.pretrained.common import describe_random, is_backbone
from network.weights import LOAD_ERRORS, load_partial, unwrap_model, unwrap_state_dict

log = logging.getLogger(__name__)

# NonFinite: clips whose outputs were NaN/inf, not scored (any makes Top1/Top5 "nan"); readers of the older
# eight columns are unaffected
RESULT_FIELDS = ("Epoch", "Top1", "Top5", "Loss", "LR", "Samples", "Skipped", "Seconds", "NonFinite")
EMA_KEY = "ema_state_dict"  # the averaged weights of a run trained with --ema-decay (same keys as state_dict)


def checkpoint_path(model_dir: str | Path, network: str, epoch: int) -> Path:
    """``<model_dir>/<network>_ep-<epoch:04d>.pth`` (the original's ``get_checkpoint_path``)."""
    return Path(model_dir) / f"{network}_ep-{epoch:04d}.pth"


LATEST_NAME = "latest"


def last_path(model_dir: str | Path, network: str) -> Path:
    """``<model_dir>/<network>_last.pth``: the newest training state (may be mid-epoch)."""
    return Path(model_dir) / f"{network}_last.pth"


def best_path(model_dir: str | Path, network: str) -> Path:
    """``<model_dir>/<network>_best.pth``: the state with the best validation top-1 so far."""
    return Path(model_dir) / f"{network}_best.pth"


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
                    classes: list[str] | None = None, config: Mapping[str, Any] | None = None,
                    dataset: Mapping[str, Any] | None = None, position: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, Any] | None = None, ema_state: Mapping[str, Any] | None = None) -> Path:
    """Write the checkpoint dict (unwrapped state_dict, original keys + extras) atomically to ``path``.

    ``position`` (mid-epoch checkpoints): ``{'iteration', 'plan_length', 'sampler_epoch', 'partial',
    'train_list'}``, the steps of epoch ``epoch + 1`` already trained, the sums of those steps
    (`train.monitor.metric.SLOTS` and ``seconds``) and the training list's fingerprint.
    ``config`` is the run's `train.config.RunConfig.to_dict()`, ``dataset`` its ``DatasetSpec.to_dict()``:
    plain data, so evaluation, prediction and export know the run without its command line.
    ``ema_state``: the EMA weights of ``--ema-decay`` (`train.engine.ema`), saved under :data:`EMA_KEY`.
    """
    bare = unwrap_model(model)
    state = {"epoch": int(epoch), "state_dict": unwrap_state_dict(model)}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if ema_state is not None:
        state[EMA_KEY] = dict(ema_state)
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    state["rng"] = rng if rng is not None else rng_state()
    state["network"] = network
    head = classifier_of(bare)
    state["num_classes"] = int(head.out_features) if isinstance(head, nn.Linear) else len(classes or [])
    state["classes"] = list(classes or [])
    state["config"] = _plain(dict(config or {}))
    state["dataset"] = _plain(dict(dataset or {}))
    state["input_spec"] = input_spec_of(bare).to_dict()  # the frames the model expects (channel order, mean, std)
    if position:
        state["position"] = _plain(dict(position))
    if metrics:
        state["metrics"] = _plain(dict(metrics))
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
    except LOAD_ERRORS as exc:
        raise ValueError(f"{path}: not a PyTorch checkpoint (torch.load failed with {exc.__class__.__name__}); "
                         "pass a .pth file written by training or an original checkpoint") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    if "state_dict" not in obj:
        obj = {"state_dict": obj}
    if not isinstance(obj["state_dict"], dict) or not all(torch.is_tensor(v) for v in obj["state_dict"].values()):
        raise ValueError(f"{path}: holds no model weights (no 'state_dict' of tensors); pass a .pth file "
                         "written by training or an original checkpoint")
    return obj


@dataclass(frozen=True)
class StartPoint:
    """Where training starts: ``mode`` is 'scratch', 'pretrained' (weights only) or 'resume' (full state).

    ``epoch`` = completed epochs before the first one this run trains (0 unless resuming).
    """

    mode: str
    epoch: int
    path: Path | None = None
    iteration: int = 0  # steps of epoch ``epoch + 1`` already trained (a mid-epoch checkpoint)


def position_of(ckpt: Mapping[str, Any]) -> tuple[int, int]:
    """``(completed epochs, steps done in the next epoch)`` of a checkpoint dict."""
    pos = ckpt.get("position") or {}
    return int(ckpt.get("epoch", 0) or 0), int(pos.get("iteration", 0) or 0)


def newest_checkpoint(model_dir: str | Path, network: str) -> tuple[Path, int, int] | None:
    """The newest checkpoint of the folder that loads, as ``(path, epoch, iteration)``; None if there is none.

    Candidates: the file named by ``latest``, ``<network>_last.pth``, then ``<network>_ep-XXXX.pth`` from the
    newest; a file that does not load is skipped with a WARNING (atomic writes make that a damaged disk). A
    numbered file no newer than one already read is not read (a long run's folder holds one per epoch).
    """
    folder = Path(model_dir)
    pointer = folder / LATEST_NAME
    names = [pointer.read_text(encoding="utf-8").strip()] if pointer.is_file() else []
    candidates = [folder / n for n in names if n] + [last_path(folder, network)]
    numbered = {checkpoint_path(folder, network, e): e for e in reversed(list_checkpoints(folder, network))}
    found: list[tuple[tuple[int, int], Path]] = []
    for path in dict.fromkeys(candidates + list(numbered)):
        if not path.is_file() or (path in numbered and found and (numbered[path], 0) <= max(f[0] for f in found)):
            continue
        try:
            ckpt = load_checkpoint_file(path)
        except ValueError as exc:
            log.warning("%s; not resuming from it", exc)
            continue
        found.append((position_of(ckpt), path))
    if not found:
        return None
    (epoch, iteration), path = max(found, key=lambda f: f[0])
    return path, epoch, iteration


def resolve_start(pretrained: str | None, resume_epoch: int | str, model_dir: str | Path, network: str) -> StartPoint:
    """Decide where to start from the arguments; every caller asks this function.

    1. ``--pretrained_3d FILE`` without ``--resume-epoch``: initialise from FILE (non-strict), epoch 0.
    2. ``--pretrained_3d FILE --resume-epoch N``: the original README's resume example passes both; we resume
       the full state from FILE and continue after N completed epochs (the original README's ``ep-0020.pth`` with
       ``--resume-epoch 21`` therefore skips an epoch, exactly as asked; a warning says so). A FILE saved inside
       epoch N + 1 (a ``_last.pth`` after a signal) continues at its saved step, as ``auto`` would.
    3. ``--resume-epoch N`` (N ≥ 1): resume from ``<model_dir>/<network>_ep-000N.pth``.
    4. ``--resume-epoch auto``: from :func:`newest_checkpoint` (mid-epoch ones included), else as 1 from
       ``--pretrained_3d FILE`` when given (a requeued fine-tuning job continues its own checkpoints), else from
       scratch.
    5. otherwise (``--resume-epoch`` -1 or 0): from scratch.
    """
    if resume_epoch == "auto":
        newest = newest_checkpoint(model_dir, network)
        if newest is not None:
            path, epoch, iteration = newest
            return StartPoint("resume", epoch, path, iteration)
        if not pretrained:
            return StartPoint("scratch", 0)
    resume_epoch = -1 if resume_epoch == "auto" else int(resume_epoch)
    if pretrained:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: --pretrained_3d file not found (give the path of a .pth checkpoint)")
        if resume_epoch >= 0:
            return StartPoint("resume", resume_epoch, path, _steps_into(path, resume_epoch))
        return StartPoint("pretrained", 0, path)
    if resume_epoch >= 1:
        path = checkpoint_path(model_dir, network, resume_epoch)
        if not path.is_file():
            found = list_checkpoints(model_dir, network)
            raise FileNotFoundError(f"{path}: no checkpoint for --resume-epoch {resume_epoch} "
                                    f"(found epochs {found or 'none'} in {model_dir}; check --model-dir/--network)")
        return StartPoint("resume", resume_epoch, path)
    return StartPoint("scratch", 0)


def _steps_into(path: Path, epoch: int) -> int:
    """The steps of epoch ``epoch + 1`` that the checkpoint ``path`` holds (0 for a file saved at another epoch,
    or one that does not load: `restore` reports it)."""
    try:
        saved_epoch, iteration = position_of(load_checkpoint_file(path))
    except ValueError:
        return 0
    return iteration if saved_epoch == epoch else 0


def train_list_fingerprint(records: Sequence[Any]) -> str:
    """SHA-1 of the training list in its order (label, id, cut of every record): a mid-epoch checkpoint stores it
    as ``position['train_list']`` so that a resume can tell that the epoch continues on the same videos."""
    digest = hashlib.sha1()
    for r in records:
        digest.update(f"{r.label}\t{r.video_id}\t{r.start}\t{r.end}\n".encode())
    return f"{len(records)}:{digest.hexdigest()}"


def check_same_train_list(ckpt: Mapping[str, Any], path: Path | None, fingerprint: str) -> None:
    """A mid-epoch resume must continue the epoch on the same training list (same videos, same order): another
    list makes the epoch's permutation differ, so clips would train twice or never. Checkpoints without the
    fingerprint are not checked."""
    saved = (ckpt.get("position") or {}).get("train_list")
    if saved and saved != fingerprint:
        raise ValueError(f"{path}: saved inside an epoch over another training list ({saved.split(':')[0]} videos, "
                         f"now {fingerprint.split(':')[0]}; the CSV or the stored videos changed); restore them, or "
                         "resume from the last <network>_ep-XXXX.pth with --resume-epoch N")


PARTIAL_WARN, PARTIAL_ERROR = 0.5, 0.1  # --pretrained_3d filling less than this fraction of the model


def check_resume_matches(ckpt: Mapping[str, Any], path: Path, network: str, classes: list[str]) -> None:
    """A resume must continue the same run: same network and the same class list in the same order."""
    saved_net = str(ckpt.get("network") or "")
    if saved_net and network and saved_net.lower() != network.lower():
        raise ValueError(f"{path}: saved by network '{saved_net}', but this run is '{network}'; resume with "
                         f"--network {saved_net}, or start a new run with --pretrained_3d for fine-tuning")
    saved = [str(c) for c in ckpt.get("classes") or []]
    if saved and classes and saved != list(classes):
        diff = next((i for i, (a, b) in enumerate(zip(saved, classes)) if a != b), min(len(saved), len(classes)))
        raise ValueError(f"{path}: its {len(saved)} classes differ from this run's {len(classes)} (first at index "
                         f"{diff}: '{saved[diff] if diff < len(saved) else '-'}' vs "
                         f"'{classes[diff] if diff < len(classes) else '-'}'); resume with the label dictionary "
                         "the checkpoint was trained with")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)`` for the per-parameter state (momentum buffers, Adam moments, step
    counts), keeping this run's settings of every group: ``weight_decay``, ``momentum``/``betas``, ``lr_mult``
    and the kernel choice (``fused``/``foreach``).

    ``load_state_dict`` would replace them with the saved run's; they come from this command line, as the lr
    schedule does, and a resume that changes one is named by a warning (`train.config.changed_fields`).
    """
    settings = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, settings):
        group.update(kept)


def optimizer_name(optimizer_or_state: torch.optim.Optimizer | Mapping[str, Any]) -> str:
    """'adamw' or 'sgd': the ``--optimizer`` of an optimiser or of its saved ``state_dict()`` (AdamW's groups
    hold ``betas``, SGD's ``momentum``; original checkpoints are SGD's)."""
    groups = optimizer_or_state.param_groups if isinstance(optimizer_or_state, torch.optim.Optimizer) \
        else optimizer_or_state.get("param_groups") or []
    return "adamw" if groups and "betas" in groups[0] else "sgd"


def check_same_optimizer(optimizer: torch.optim.Optimizer, state: Mapping[str, Any], path: Path) -> None:
    """A resume continues the optimiser that wrote the checkpoint: another ``--optimizer`` is refused (its
    moments would not carry over, and loading one's state into the other breaks the step)."""
    saved, wanted = optimizer_name(state), optimizer_name(optimizer)
    if saved != wanted:
        raise ValueError(f"{path}: written by --optimizer {saved}, but this run uses --optimizer {wanted}; resume "
                         f"with --optimizer {saved}, or start a new run from it with --pretrained_3d")


def restore(start: StartPoint, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
            scaler: Any = None, scheduler: Any = None, *, network: str = "", classes: list[str] | None = None,
            allow_partial: bool = False, source: str | None = None) -> dict[str, Any] | None:
    """Apply ``start`` to the training state; returns the loaded checkpoint dict (None from scratch).

    The model always goes through ``network.weights.load_partial`` (strips ``module.``/``_orig_mod.``,
    name + shape filter, one log line of what was skipped). A resume must match ``network`` and ``classes``
    (:func:`check_resume_matches`) and every tensor; then the optimiser, scaler, scheduler and RNG states
    are restored. A ``--pretrained_3d`` file of public weights (``source``, or recognised:
    `network.pretrained`) is converted and loaded exactly or refused; one of ours or the original's is loaded by
    name and shape, a WARNING lists the backbone layers it left random, and under 10% filled is an error unless
    ``allow_partial``.
    """
    if start.mode == "scratch" or start.path is None:
        log.info("Training from scratch")
        return None
    if start.mode == "pretrained":
        public = import_public(model, start.path, network, source, allow_other_network=allow_partial)
        if public is not None:
            return {"state_dict": public.state, **public.container}
    ckpt = load_checkpoint_file(start.path)
    if start.mode == "resume":
        check_resume_matches(ckpt, start.path, network, list(classes or []))
    report = load_partial(model, ckpt["state_dict"], log=log)
    complete = not report.missing and not report.mismatched
    if start.mode == "pretrained":
        total = len(model.state_dict())
        share = len(report.loaded) / max(1, total)
        what = f"`{start.path}' filled {len(report.loaded)} of the model's {total} tensors ({share:.0%})"
        if share < PARTIAL_ERROR and not allow_partial:
            raise ValueError(f"{what}: it was trained as another network (saved as "
                             f"'{ckpt.get('network') or 'unknown'}'); pass the matching --network, or "
                             "--allow-partial True to keep the few tensors that fit")
        random = [k for k in report.missing + report.mismatched if is_backbone(k)]
        if random:
            log.warning("%s; %d backbone tensors stay random (%.0f%% of the backbone): %s%s", what, len(random),
                        100 * len(random) / max(1, sum(map(is_backbone, model.state_dict()))),
                        describe_random(unwrap_model(model), random),
                        "; most of the model starts from scratch" if share < PARTIAL_WARN else "")
        else:
            log.info("Initialised from %s", what)
        return ckpt
    if not complete:
        raise ValueError(f"{start.path}: does not fit '{network}' ({len(report.missing)} tensors missing, "
                         f"{len(report.mismatched)} with another shape); a resume needs the same network and "
                         "class count")
    saved_epoch = ckpt.get("epoch")
    if saved_epoch is not None and int(saved_epoch) != start.epoch and not start.iteration:
        log.warning("`%s' holds epoch %s; continuing after epoch %d as asked by --resume-epoch",
                    start.path, saved_epoch, start.epoch)
    parts = ["model"]
    if optimizer is not None and "optimizer" in ckpt and complete:
        check_same_optimizer(optimizer, ckpt["optimizer"], start.path)
        try:
            load_optimizer_state(optimizer, ckpt["optimizer"])
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
    where = f", iteration {start.iteration} of epoch {start.epoch + 1}" if start.iteration else ""
    log.info("Resumed %s from `%s' at epoch %d%s", " & ".join(parts), start.path, start.epoch, where)
    return ckpt


class ResultsCsv:
    """Per-epoch results: ``Epoch,Top1,Top5,Loss,LR,Samples,Skipped,Seconds,NonFinite``, flushed after every
    row."""

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

    def __enter__(self) -> ResultsCsv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
