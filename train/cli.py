"""The training command line: every argument once, typed, grouped, with the original spellings and defaults.

The original copied the parser into six scripts with ``type=bool`` (``--fine-tune False`` was True),
``type=list`` for ``--lr-steps`` (a list of characters), untyped clip sizes and ``--gpus`` used as both a
device list and a count (spec bug 31). Here booleans go through :func:`str2bool`, lists are ``nargs='+'``
ints (commas accepted too), and each data set's defaults come from its ``DatasetSpec.defaults``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Sequence

from data.spec import DatasetSpec

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")

# Defaults of the original HACS script (spec §4.1); DatasetSpec.defaults override them per data set.
BASE_DEFAULTS: dict[str, Any] = {
    "debug_mode": False, "dataset": "HACS", "clip_length": 16, "clip_size": 284, "val_clip_length": None,
    "val_clip_size": None, "train_frame_interval": [1, 2], "val_frame_interval": 2, "task_name": "",
    "model_dir": None, "log_file": "", "gpus": None, "network": "r3d_50", "gates": False, "pretrained_3d": None,
    "fine_tune": False, "resume_epoch": -1, "batch_size": 48, "long_cycles": True, "short_cycles": True,
    "lr_base": 0.1, "lr_steps": [40, 60, 75, 90], "lr_factor": 0.1, "save_frequency": 1.0, "end_epoch": 120,
    "random_seed": 1, "workers": 4, "precision": None, "device": "auto", "eval_frequency": 1,
    "tensorboard": False, "log_interval": 50,
}

TRUE = {"true", "t", "yes", "y", "1", "on"}
FALSE = {"false", "f", "no", "n", "0", "off"}


def str2bool(value: str | bool) -> bool:
    """``'True'/'yes'/'1'/'on'`` → True, ``'False'/'no'/'0'/'off'`` → False (case-insensitive); else an error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got '{value}'")


def int_list(values: Sequence[str | int] | str | int) -> list[int]:
    """``['40', '60']``, ``'40,60'`` or ``'[40, 60]'`` → ``[40, 60]``."""
    items = values if isinstance(values, (list, tuple)) else [values]
    out: list[int] = []
    for item in items:
        for part in str(item).replace("[", " ").replace("]", " ").replace(",", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected integers, got '{part}'") from None
    return out


def parse_gpus(value: str | int | None) -> tuple[int | None, list[int] | None]:
    """``--gpus`` as the README's count (``'4'``) or the original's device list (``'0,1,2,3'``).

    Returns ``(count, device_ids)``; ``(None, None)`` means "all visible CUDA devices, or 1 process on CPU".
    """
    if value is None or str(value).strip() in ("", "auto"):
        return None, None
    text = str(value).strip()
    if "," in text:
        ids = int_list(text)
        if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
            raise argparse.ArgumentTypeError(f"--gpus '{value}': expected distinct device ids like 0,1,2,3")
        return len(ids), ids
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus '{value}': expected a count (4) or device ids (0,1,2,3)") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"--gpus '{value}': the number of processes must be >= 1 "
                                         "(to select device 0 only, write --gpus 0,)")
    return count, None


def build_parser(spec: DatasetSpec) -> argparse.ArgumentParser:
    """The parser of ``train_<dataset>.py`` for ``spec``; defaults = :data:`BASE_DEFAULTS` + ``spec.defaults``."""
    p = argparse.ArgumentParser(
        description=f"Train an SRTG/MTNet/R3D video network on {spec.name} ({spec.num_classes} classes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    b = dict(type=str2bool, nargs="?", const=True, metavar="BOOL")

    g = p.add_argument_group("data")
    g.add_argument("--dataset", type=str, help="data set location: <root>/data/<folder>/ (original layout), "
                   "a folder holding jpg/ and labels/, or <root> with data/ and labels/")
    if spec.variants:
        g.add_argument("--variant", type=int, choices=sorted(spec.variants), default=_variant_default(spec),
                       help="data set variant (number of classes), e.g. Mini-Kinetics 200 or 400/600/700")
    g.add_argument("--clip-length", type=int, help="frames per training clip (T)")
    g.add_argument("--clip-size", type=int, help="height = width of training clips in pixels (S)")
    g.add_argument("--val-clip-length", type=int, help="frames per validation clip (default: --clip-length)")
    g.add_argument("--val-clip-size", type=int, help="validation clip side (default: --clip-size)")
    g.add_argument("--train-frame-interval", "--train-frame-inteval", dest="train_frame_interval", nargs="+",
                   type=str, metavar="N", help="temporal sampling interval(s) for training; several values are "
                   "drawn at random per clip (the README's spelling 'inteval' is accepted)")
    g.add_argument("--val-frame-interval", "--val-frame-inteval", dest="val_frame_interval", type=int,
                   help="temporal sampling interval for validation")
    g.add_argument("--workers", type=int, help="DataLoader worker processes per training process (0: load in "
                   "the main process)")

    g = p.add_argument_group("model and initialisation")
    g.add_argument("--network", type=str, help="architecture name from network.list_models(), e.g. srtg_r3d_50")
    g.add_argument("--gates", **b, help="SRTG temporal (cycle-consistency) gates on the SR blocks; also "
                   "names the results folder <network>_gates_<bool>")
    g.add_argument("--pretrained_3d", "--pretrained-3d", dest="pretrained_3d", type=str, metavar="PTH",
                   help="initialise from this checkpoint (non-strict: same name and shape); with "
                   "--resume-epoch N resume the full training state from it at epoch N")
    g.add_argument("--fine-tune", **b, help="fine-tuning: backbone at 0.6x lr, recurrent cells 0.5x, "
                   "classifier fc 1x (needs no --resume-epoch)")
    g.add_argument("--resume-epoch", type=int, help="resume after N completed epochs from "
                   "<model-dir>/<network>_gates_<bool>/<network>_ep-000N.pth (-1: do not resume)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help="base batch size B of one step over all processes (split "
                   "across them, as the original's DataParallel), before multigrid scaling")
    g.add_argument("--lr-base", type=float, help="base learning rate (of the largest long-cycle batch when "
                   "long cycles are on)")
    g.add_argument("--lr-steps", nargs="+", type=str, metavar="EPOCH", help="epochs at which the learning "
                   "rate is multiplied by --lr-factor, e.g. --lr-steps 40 60 75")
    g.add_argument("--lr-factor", type=float, help="learning rate decay factor at each of --lr-steps")
    g.add_argument("--end-epoch", type=int, help="train until this many epochs are completed")
    g.add_argument("--long-cycles", **b, help="multigrid long cycles (batch/frames/size change by epoch quarter)")
    g.add_argument("--short-cycles", **b, help="multigrid short cycles (spatial size changes every iteration)")
    g.add_argument("--random-seed", type=int, help="seed of every random operation (model init, shuffling, "
                   "augmentation)")

    g = p.add_argument_group("hardware")
    g.add_argument("--gpus", type=str, help="number of processes/GPUs (4) or the original's device list "
                   "(0,1,2,3); without torchrun N>1 starts N local processes; on CPU N gloo processes "
                   "(default: all visible GPUs, or 1 on CPU)")
    g.add_argument("--device", type=str, choices=DEVICES, help="where to train (auto: CUDA when available)")
    g.add_argument("--precision", type=str, choices=PRECISIONS, help="fp16: autocast + GradScaler (the "
                   "default on CUDA, replacing apex O1); bf16: autocast without scaler; fp32: the default on CPU")

    g = p.add_argument_group("output and monitoring")
    g.add_argument("--model-dir", type=str, help="parent folder of the results; files go to "
                   "<model-dir>/<network>_gates_<bool>/ (default: ./results/<DATASET>)")
    g.add_argument("--log-file", type=str, help="log file (default: <results folder>/train.log)")
    g.add_argument("--task-name", type=str, help="free-form task name written to the log")
    g.add_argument("--save-frequency", type=float, help="save a checkpoint every this many epochs "
                   "(and always after the last epoch)")
    g.add_argument("--eval-frequency", type=int, help="validate every this many epochs (and after the last)")
    g.add_argument("--log-interval", type=int, help="training iterations between speed/metric log lines")
    g.add_argument("--debug-mode", **b, help="DEBUG-level logging")
    g.add_argument("--tensorboard", **b, help="also write TensorBoard scalars to <results folder>/tensorboard")

    defaults = {**BASE_DEFAULTS, **dict(spec.defaults)}
    if defaults.get("dataset") is None:
        defaults["dataset"] = spec.name
    p.set_defaults(**defaults)
    return p


def _variant_default(spec: DatasetSpec) -> int:
    return int(spec.defaults.get("variant", max(spec.variants)))


def parse_args(spec: DatasetSpec, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and normalise: list arguments → ints, ``--gpus`` → ``gpus`` count + ``gpu_ids``, checks."""
    parser = build_parser(spec)
    args = parser.parse_args(argv)
    try:
        args.lr_steps = int_list(args.lr_steps)
        args.train_frame_interval = int_list(args.train_frame_interval)
        args.gpus, args.gpu_ids = parse_gpus(args.gpus)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    positive = ("clip_length", "clip_size", "batch_size", "end_epoch", "val_frame_interval", "eval_frequency",
                "log_interval")
    for name in positive:
        if getattr(args, name) is None or getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.train_frame_interval or min(args.train_frame_interval) < 1:
        parser.error(f"--train-frame-interval must be integers >= 1, got {args.train_frame_interval}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    if args.save_frequency <= 0:
        parser.error(f"--save-frequency must be > 0, got {args.save_frequency}")
    if args.val_clip_length is None:
        args.val_clip_length = args.clip_length
    if args.val_clip_size is None:
        args.val_clip_size = args.clip_size
    return args


def results_dir(args: argparse.Namespace, spec: DatasetSpec) -> Path:
    """``<model-dir or ./results/<DATASET>>/<network>_gates_<bool>`` (the folder names of the README)."""
    parent = Path(args.model_dir) if args.model_dir else Path("results") / spec.name
    return parent / f"{args.network}_gates_{bool(args.gates)}"


def log_file(args: argparse.Namespace, spec: DatasetSpec) -> Path:
    """``--log-file`` or ``<results folder>/train.log``."""
    return Path(args.log_file) if args.log_file else results_dir(args, spec) / "train.log"


def task_name(args: argparse.Namespace) -> str:
    """``--task-name`` or, as the original's autofill, the name of the current directory."""
    return args.task_name or os.path.basename(os.getcwd())
