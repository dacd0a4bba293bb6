"""The typed run configuration: seven groups of fields, each field declared once with its default, flags and help.

``RunConfig`` is built once per run by :func:`train.engine.cli.parse_config` (defaults < data set overrides <
``--config`` file < command line), validated where it is built, passed down instead of an argparse
``Namespace``, saved in every checkpoint as plain data (``RunConfig.to_dict``) and read back by evaluation,
prediction and export (``RunConfig.from_saved``). Field names are the original's argparse ``dest`` names, so
the original spellings (``--pretrained_3d``, ``--train-frame-inteval``) and ``vars(args)`` dumps still map.
"""
from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from data.catalog.spec import SOURCES
from data.store.frame_decoder import DECODE_CHOICES
from network.pretrained import SOURCE_NAMES as PRETRAINED_SOURCES

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("multistep", "cosine")
GATE_SIMILARITIES = ("raw", "tcc", "cosine", "tstd", "recal")
OPTIMIZERS = ("sgd", "adamw")
# ``--resume-epoch``: completed epochs N (-1: do not resume) or "auto"; typed on the command line as a string
# (the parser picks ``str`` for this alias) and normalised by ``RunConfig.validate``.
ResumeAt = int | str
AUTO = "auto"


MAX_DEFAULT_WORKERS = 4


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def opt(default: Any, *flags: str, help: str, kind: str = "", choices: tuple | None = None,
        metavar: str | None = None) -> Any:
    """A config field with its command-line description. ``kind``: '' (plain), 'bool', 'ints', 'gpus'.

    The first flag is the canonical spelling; the others are the original's aliases.
    """
    meta = {"flags": flags, "help": help, "kind": kind, "choices": choices, "metavar": metavar}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Where the frames are and how clips are cut from them."""

    dataset: str | None = opt(None, "--dataset", help="data set location: <root>/data/<folder>/ (original "
                              "layout), a folder holding jpg/ and labels/, or <root> with data/ and labels/")
    variant: int | None = opt(None, "--variant", help="data set variant (number of classes), e.g. Kinetics "
                              "200/400/600/700")
    clip_length: int = opt(16, "--clip-length", help="frames per training clip (T)")
    clip_size: int = opt(284, "--clip-size", help="height = width of training clips in pixels (S)")
    val_clip_length: int | None = opt(None, "--val-clip-length", help="frames per validation clip (default: "
                                      "--clip-length)")
    val_clip_size: int | None = opt(None, "--val-clip-size", help="validation clip side (default: --clip-size)")
    train_frame_interval: list[int] = opt([1, 2], "--train-frame-interval", "--train-frame-inteval", kind="ints",
                                          metavar="N", help="temporal sampling interval(s) for training; several "
                                          "values are drawn at random per clip (the original 'inteval' works too)")
    val_frame_interval: int = opt(2, "--val-frame-interval", "--val-frame-inteval",
                                  help="temporal sampling interval for validation")
    workers: int | None = opt(None, "--workers", help="DataLoader worker processes per training process (0: load "
                              "in the main process; default: the original's 4, or fewer on a machine with fewer "
                              "cores)")
    source: str = opt("store", "--source", choices=SOURCES, help="where clips are read: store: the SQLite frame "
                      "databases under jpg/ (the fast path); video: the video files listed in videos.json by "
                      "`python -m data.prepare ... [--no-convert]`, decoded with PyAV in the workers (no conversion, "
                      "about the videos' disk, more CPU per clip)")
    max_missing: float = opt(5.0, "--max-missing", help="stop when more than this percentage of a label CSV's "
                             "videos is missing (a half-mounted or half-converted data set); below it each CSV's "
                             "missing videos are one WARNING; 100 accepts any loss")


@dataclass
class ModelConfig:
    """Which network, its gate, and where its weights start."""

    network: str = opt("r3d_50", "--network", help="architecture name from network.list_models(), e.g. "
                       "srtg_r3d_50")
    gates: bool = opt(False, "--gates", kind="bool", help="SRTG temporal (cycle-consistency) gates on the SR "
                      "blocks; also names the results folder <network>_gates_<bool>")
    gate_similarity: str = opt("raw", "--gate-similarity", choices=GATE_SIMILARITIES,
                               help="frame similarity inside the gate's cycle-consistency check")
    gate_temperature: float = opt(0.1, "--gate-temperature", help="softmax temperature of the 'tcc', 'cosine' "
                                  "and 'tstd' similarities")
    gates_from_epoch: int = opt(0, "--gates-from-epoch", help="gate warm-up: until this many epochs are "
                                "completed the SR blocks recalibrate every sample (gate off)")
    pretrained_3d: str | None = opt(None, "--pretrained_3d", "--pretrained-3d", metavar="PTH",
                                    help="initialise from this checkpoint (ours or the original's: same name and "
                                    "shape; public weights of torchvision, IG65M, 3D-ResNets or VMZ: converted and "
                                    "loaded exactly, see docs/model_zoo.md); with --resume-epoch N resume the full "
                                    "training state from it at epoch N")
    pretrained_source: str | None = opt(None, "--pretrained-source", choices=PRETRAINED_SOURCES,
                                        help="where the --pretrained_3d file comes from (default: recognised from "
                                        "its names and shapes)")
    allow_partial: bool = opt(False, "--allow-partial", kind="bool", help="accept a --pretrained_3d file "
                              "that fills under 10%% of the model's tensors")
    fine_tune: bool = opt(False, "--fine-tune", kind="bool", help="fine-tuning: backbone at 0.6x lr, recurrent "
                          "cells 0.5x, classifier fc 1x (needs no --resume-epoch)")
    resume_epoch: ResumeAt = opt(-1, "--resume-epoch", metavar="N|auto",
                                 help="resume after N completed epochs from <results folder>/<network>_ep-000N.pth; "
                                 "auto: from the newest complete checkpoint of the folder (mid-epoch 'last' "
                                 "included), or, if it has none, from --pretrained_3d or scratch; -1: do not resume")


@dataclass
class OptimConfig:
    """The optimiser step: batch, base rate, seed, optimiser and its decay, accumulation, clipping, EMA."""

    batch_size: int = opt(48, "--batch-size", help="base batch size B of one step over all processes (split "
                          "across them, as the original's DataParallel), before multigrid scaling")
    lr_base: float = opt(0.1, "--lr-base", help="base learning rate (of the largest long-cycle batch when long "
                         "cycles are on)")
    random_seed: int = opt(1, "--random-seed", help="seed of every random operation (model init, shuffling, "
                           "augmentation)")
    optimizer: str = opt("sgd", "--optimizer", choices=OPTIMIZERS, help="sgd: SGD with Nesterov momentum (the "
                         "original); adamw: torch's AdamW (decoupled weight decay); both use the fused kernel on "
                         "CPU and CUDA")
    momentum: float = opt(0.9, "--momentum", help="SGD's (Nesterov) momentum; with --optimizer adamw: beta1, the "
                          "decay of the gradient's running mean (beta2 is 0.999)")
    weight_decay: float = opt(1e-4, "--weight-decay", help="weight decay (L2 for sgd, decoupled for adamw); "
                              "applied to every parameter unless --no-decay-norm-bias")
    no_decay_norm_bias: bool = opt(False, "--no-decay-norm-bias", kind="bool", help="no weight decay on "
                                   "normalisation weights, biases and every other 1-D parameter (as PySlowFast, "
                                   "PyTorchVideo and VideoMAE)")
    accumulate_grad: int = opt(1, "--accumulate-grad", metavar="N", help="one optimiser step every N batches, "
                               "the loss scaled by 1/N: the update of one batch N times larger (1: every batch)")
    clip_grad_norm: float = opt(0.0, "--clip-grad-norm", metavar="X", help="before each optimiser step, scale "
                                "the gradients down to a total L2 norm of at most X (after unscaling under fp16); "
                                "0: off")
    ema_decay: float = opt(0.0, "--ema-decay", metavar="D", help="keep an exponential moving average of the "
                           "weights (ema = D*ema + (1-D)*weights after every optimiser step), validated beside "
                           "the model and saved in checkpoints; e.g. 0.9998; 0: off")


@dataclass
class RegularisationConfig:
    """Label smoothing and clip mixing (mixup, cutmix), with soft targets."""

    label_smoothing: float = opt(0.0, "--label-smoothing", metavar="EPS", help="label smoothing: the target "
                                 "puts 1-EPS+EPS/K on the label and EPS/K on each of the K classes (0: off)")
    mixup_alpha: float = opt(0.0, "--mixup-alpha", metavar="A", help="mixup: blend pairs of clips with a weight "
                             "drawn from Beta(A, A), targets blended alike (0: off)")
    cutmix_alpha: float = opt(0.0, "--cutmix-alpha", metavar="A", help="cutmix: paste a box of another clip "
                              "(the same box on every frame), its area drawn from Beta(A, A), targets weighted by "
                              "area (0: off); with --mixup-alpha too, each mixed batch uses one of the two")
    mix_prob: float = opt(1.0, "--mix-prob", metavar="P", help="share of training batches mixed when "
                          "--mixup-alpha or --cutmix-alpha is on (chosen per batch)")


@dataclass
class ScheduleConfig:
    """How long, and how the learning rate and the multigrid shapes change over the epochs."""

    end_epoch: int = opt(120, "--end-epoch", help="train until this many epochs are completed")
    lr_schedule: str = opt("multistep", "--lr-schedule", choices=LR_SCHEDULES,
                           help="multistep: x --lr-factor at each of --lr-steps (the original); cosine: "
                           "half-cosine from --lr-base to 0 at --end-epoch")
    lr_steps: list[int] = opt([40, 60, 75, 90], "--lr-steps", kind="ints", metavar="EPOCH",
                              help="epochs at which the learning rate is multiplied by --lr-factor (multistep)")
    lr_factor: float = opt(0.1, "--lr-factor", help="learning rate decay factor at each of --lr-steps")
    lr_warmup_epochs: float = opt(0.0, "--lr-warmup-epochs", help="linear warm-up from 0.1x to 1x of the "
                                  "schedule over this many epochs (0: none, the original)")
    long_cycles: bool = opt(True, "--long-cycles", kind="bool", help="multigrid long cycles (batch/frames/size "
                            "change by epoch quarter)")
    short_cycles: bool = opt(True, "--short-cycles", kind="bool", help="multigrid short cycles (spatial size "
                             "changes every iteration)")
    clip_warmup_epochs: int = opt(0, "--clip-warmup-epochs", help="clip-length warm-up: the first N epochs train "
                                  "on clips of --clip-warmup-length frames (0: none, the original)")
    clip_warmup_length: int | None = opt(None, "--clip-warmup-length", help="frames per training clip during "
                                         "the clip-length warm-up (default: 2x --clip-length)")
    clip_warmup_size: int | None = opt(None, "--clip-warmup-size", help="side of the training clips during the "
                                       "clip-length warm-up (default: --clip-size)")


@dataclass
class OutputConfig:
    """Where results go and what is logged."""

    model_dir: str | None = opt(None, "--model-dir", help="parent folder of the results; files go to "
                                "<model-dir>/<network>_gates_<bool>/ (default: ./results/<DATASET>)")
    log_file: str = opt("", "--log-file", help="log file (default: <results folder>/train.log)")
    task_name: str = opt("", "--task-name", help="free-form task name written to the log (default: the data "
                         "set)")
    save_frequency: float = opt(1.0, "--save-frequency", help="save a checkpoint every this many epochs (and "
                                "always after the last epoch)")
    eval_frequency: int = opt(1, "--eval-frequency", help="validate every this many epochs (and after the last)")
    log_interval: int = opt(50, "--log-interval", help="training iterations between speed/metric log lines")
    debug_mode: bool = opt(False, "--debug-mode", kind="bool", help="DEBUG-level logging and tracebacks")
    tensorboard: bool = opt(False, "--tensorboard", kind="bool", help="also write TensorBoard scalars to "
                            "<results folder>/tensorboard")
    run_name: str = opt("", "--run-name", metavar="NAME", help="suffix of the results folder: "
                        "<network>_gates_<bool>_<NAME> (one folder per run of a sweep)")
    overwrite: bool = opt(False, "--overwrite", kind="bool", help="start from scratch in a results folder that "
                          "holds an earlier run: its files are moved aside into <results folder>/previous-<time>/")
    keep_checkpoints: int = opt(0, "--keep-checkpoints", metavar="K", help="keep only the newest K "
                                "<network>_ep-XXXX.pth files (0: keep all); _last and _best are always kept")
    save_every_minutes: float = opt(0.0, "--save-every-minutes", metavar="MIN", help="also write the mid-epoch "
                                    "<network>_last.pth every this many minutes (0: only at epoch ends and on "
                                    "SIGTERM/SIGUSR1/SIGINT)")


@dataclass
class HardwareConfig:
    """Processes, devices and number formats."""

    gpus: str | None = opt(None, "--gpus", kind="gpus", help="number of processes/GPUs (4) or the original's "
                           "device list (0,1,2,3); without torchrun N>1 starts N local processes; on CPU N gloo "
                           "processes (default: all visible GPUs, or 1 on CPU)")
    device: str = opt("auto", "--device", choices=DEVICES, help="where to train (auto: CUDA when available)")
    precision: str | None = opt(None, "--precision", choices=PRECISIONS, help="fp16: autocast + GradScaler "
                                "(the default on CUDA); bf16: autocast without scaler; fp32: the default on CPU")
    decode: str = opt("cpu", "--decode", choices=DECODE_CHOICES, help="where training and validation clips are "
                      "decoded: cpu: JPEG decoding and transforms in the DataLoader workers; gpu: the workers only "
                      "read the JPEG blobs, each batch is decoded (torchvision/nvJPEG) and transformed on the "
                      "training device (on a CPU device: in the main process, with a warning)")
    compile: bool = opt(False, "--compile", kind="bool", help="torch.compile the convolutional backbone (recurrent "
                        "cells stay eager); if compiling fails: one warning and eager mode")
    compile_backend: str = opt("inductor", "--compile-backend", help="torch.compile backend of --compile (e.g. "
                               "inductor, aot_eager, eager)")
    channels_last: bool = opt(False, "--channels-last", kind="bool", help="channels_last_3d memory format for the "
                              "model and its input (faster convolutions with cuDNN/oneDNN)")
    sync_bn: bool = opt(False, "--sync-bn", kind="bool", help="under DDP, convert BatchNorm to SyncBatchNorm "
                        "(batch statistics over every process: for small per-GPU batches); one warning and "
                        "ignored in a single process")
    dist_timeout: float = opt(300.0, "--dist-timeout", metavar="SECONDS", help="collective timeout of the process "
                              "group: a rank that hangs or dies makes the others stop after this long")


GROUPS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optimisation": OptimConfig,
                           "regularisation": RegularisationConfig, "schedule": ScheduleConfig,
                           "output": OutputConfig, "hardware": HardwareConfig}


def _group_fields() -> Iterator[tuple[str, Any]]:
    for group, cls in GROUPS.items():
        for f in fields(cls):
            yield group, f


FIELD_GROUP: dict[str, str] = {f.name: group for group, f in _group_fields()}


def field_default(name: str) -> Any:
    """The one default of field ``name``."""
    f = next(f for _, f in _group_fields() if f.name == name)
    return f.default_factory() if f.default is MISSING else f.default


def unknown_key_error(key: str, where: str) -> ValueError:
    """``ValueError`` naming an unknown configuration key and its close matches."""
    close = difflib.get_close_matches(key, FIELD_GROUP, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(sorted(FIELD_GROUP))}"
    return ValueError(f"{where}: unknown configuration key '{key}'{hint}")


def check_keys(keys: Any, where: str) -> None:
    """Raise :func:`unknown_key_error` for the first key that is not a configuration field."""
    for key in keys:
        if key not in FIELD_GROUP:
            raise unknown_key_error(key, where)


@dataclass
class RunConfig:
    """Everything a training run is told, in seven groups; ``dataset_name`` is the registered data set's name."""

    dataset_name: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    reg: RegularisationConfig = field(default_factory=RegularisationConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    _SECTIONS = {"data": "data", "model": "model", "optimisation": "optim", "regularisation": "reg",
                 "schedule": "schedule", "output": "output", "hardware": "hardware"}

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], dataset_name: str = "", where: str = "configuration") -> RunConfig:
        """Build from ``{field: value}`` (unknown keys are an error), then :meth:`validate`."""
        check_keys(values, where)
        parts = {attr: GROUPS[group](**{k: v for k, v in values.items() if FIELD_GROUP[k] == group})
                 for group, attr in cls._SECTIONS.items()}
        return cls(dataset_name=dataset_name, **parts).validate()

    def flat(self) -> dict[str, Any]:
        """``{field: value}`` over every group (the shape of the original's ``vars(args)``)."""
        out: dict[str, Any] = {}
        for attr in self._SECTIONS.values():
            out.update(asdict(getattr(self, attr)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain nested data: ``{'dataset_name', 'data': {...}, 'model': {...}, ...}`` (``weights_only``-safe)."""
        out: dict[str, Any] = {"dataset_name": self.dataset_name}
        for group, attr in self._SECTIONS.items():
            out[group] = asdict(getattr(self, attr))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "configuration") -> RunConfig:
        """Inverse of :meth:`to_dict`; also accepts a flat ``{field: value}`` mapping."""
        return cls.from_flat(flatten(data, where), str(data.get("dataset_name", "")), where)

    @classmethod
    def from_saved(cls, checkpoint: Mapping[str, Any]) -> RunConfig | None:
        """The configuration stored in a checkpoint: ``config`` (this project), the older flat ``args``
        (unknown keys dropped), or None for original checkpoints, which store neither."""
        if checkpoint.get("config"):
            return cls.from_dict(checkpoint["config"], where="checkpoint config")
        args = checkpoint.get("args")
        if args:
            known = {k: v for k, v in dict(args).items() if k in FIELD_GROUP}
            return cls.from_flat(known, str(args.get("dataset_name", "")), where="checkpoint args")
        return None

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with fields changed by name (``cfg.replace(network="srtg_r3d_18")``), validated again. Derived
        values keep what they were filled with: ``replace(clip_size=112)`` leaves ``val_clip_size`` as it was."""
        return RunConfig.from_flat({**self.flat(), **changes}, self.dataset_name)

    def validate(self) -> RunConfig:
        """Check ranges and cross-field rules (raises one-line ``ValueError`` naming the flag); fill derived
        values: the validation clip defaults to the training clip."""
        d, m, o, s, out, hw = self.data, self.model, self.optim, self.schedule, self.output, self.hardware
        for name in ("clip_length", "clip_size", "val_frame_interval", "batch_size", "end_epoch", "eval_frequency",
                     "log_interval", "accumulate_grad"):
            value = getattr(self, self._SECTIONS[FIELD_GROUP[name]]).__dict__[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if d.val_clip_length is None:
            d.val_clip_length = d.clip_length
        if d.val_clip_size is None:
            d.val_clip_size = d.clip_size
        for name in ("val_clip_length", "val_clip_size"):
            if int(getattr(d, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(d, name)}")
        d.train_frame_interval = [int(v) for v in d.train_frame_interval]
        if not d.train_frame_interval or min(d.train_frame_interval) < 1:
            raise ValueError(f"--train-frame-interval must be integers >= 1, got {d.train_frame_interval}")
        if d.workers is None:  # the original's 4, capped by the cores this process may use (no torch warning)
            d.workers = min(MAX_DEFAULT_WORKERS, available_cores())
        if d.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {d.workers}")
        if not 0 <= d.max_missing <= 100:
            raise ValueError(f"--max-missing must be a percentage in [0, 100], got {d.max_missing}")
        if not (o.lr_base > 0 and math.isfinite(o.lr_base)):
            raise ValueError(f"--lr-base must be > 0, got {o.lr_base}")
        self._validate_optimiser()
        if not 0 < s.lr_factor <= 1:
            raise ValueError(f"--lr-factor must be in (0, 1] so the rate does not grow, got {s.lr_factor}")
        s.lr_steps = [int(v) for v in s.lr_steps]
        if any(v < 1 for v in s.lr_steps) or any(b <= a for a, b in zip(s.lr_steps, s.lr_steps[1:])):
            raise ValueError(f"--lr-steps must be strictly increasing epochs >= 1, got {s.lr_steps}")
        if not 0 <= s.lr_warmup_epochs < s.end_epoch:
            raise ValueError(f"--lr-warmup-epochs must be in [0, --end-epoch {s.end_epoch}), got {s.lr_warmup_epochs}")
        if not 0 <= s.clip_warmup_epochs < s.end_epoch:
            raise ValueError(f"--clip-warmup-epochs must be in [0, --end-epoch {s.end_epoch}), got "
                             f"{s.clip_warmup_epochs}; --clip-warmup-epochs 0 trains without the warm-up")
        if s.clip_warmup_length is None:
            s.clip_warmup_length = 2 * d.clip_length
        if s.clip_warmup_size is None:
            s.clip_warmup_size = d.clip_size
        for name in ("clip_warmup_length", "clip_warmup_size"):
            if getattr(s, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(s, name)}")
        _choice("--lr-schedule", s.lr_schedule, LR_SCHEDULES)
        _choice("--device", hw.device, DEVICES)
        _choice("--decode", hw.decode, DECODE_CHOICES)
        _choice("--source", d.source, SOURCES)
        if d.source == "video" and hw.decode == "gpu":
            raise ValueError("--decode gpu sends the frame store's JPEG blobs to the device; with --source video the "
                             "workers decode the video files: use --decode cpu")
        if hw.precision is not None:
            _choice("--precision", hw.precision, PRECISIONS)
        _choice("--gate-similarity", m.gate_similarity, GATE_SIMILARITIES)
        if m.pretrained_source is not None:
            _choice("--pretrained-source", m.pretrained_source, PRETRAINED_SOURCES)
            if not m.pretrained_3d:
                raise ValueError("--pretrained-source names the source of a --pretrained_3d file; pass one")
        if not m.gate_temperature > 0:
            raise ValueError(f"--gate-temperature must be > 0, got {m.gate_temperature}")
        if m.gates_from_epoch < 0:
            raise ValueError(f"--gates-from-epoch must be >= 0, got {m.gates_from_epoch}")
        m.resume_epoch = _resume_at(m.resume_epoch)
        if out.keep_checkpoints < 0:
            raise ValueError(f"--keep-checkpoints must be >= 0 (0: keep all), got {out.keep_checkpoints}")
        if out.save_every_minutes < 0:
            raise ValueError(f"--save-every-minutes must be >= 0 (0: off), got {out.save_every_minutes}")
        if not hw.dist_timeout > 0:
            raise ValueError(f"--dist-timeout must be > 0 seconds, got {hw.dist_timeout}")
        if out.run_name and (out.run_name != Path(out.run_name).name or out.run_name.startswith(".")):
            raise ValueError(f"--run-name '{out.run_name}' must be a plain folder-name suffix (no '/' or leading '.')")
        if m.resume_epoch != AUTO and m.resume_epoch >= 1 and s.end_epoch <= m.resume_epoch:
            raise ValueError(f"--resume-epoch {m.resume_epoch} with --end-epoch {s.end_epoch}: nothing left to "
                             f"train; raise --end-epoch above {m.resume_epoch}")
        if out.save_frequency <= 0:
            raise ValueError(f"--save-frequency must be > 0, got {out.save_frequency}")
        if hw.gpus is not None:
            hw.gpus = str(hw.gpus)
        return self

    def _validate_optimiser(self) -> None:
        """Ranges of the optimiser, regularisation and EMA fields (one-line ``ValueError`` naming the flag)."""
        o, r = self.optim, self.reg
        _choice("--optimizer", o.optimizer, OPTIMIZERS)
        _in_range("--momentum", o.momentum, 0.0, 1.0, "[0, 1)")
        _in_range("--label-smoothing", r.label_smoothing, 0.0, 1.0, "[0, 1)")
        _in_range("--ema-decay", o.ema_decay, 0.0, 1.0, "[0, 1) (0: off)")
        for flag, value in (("--weight-decay", o.weight_decay), ("--clip-grad-norm", o.clip_grad_norm),
                            ("--mixup-alpha", r.mixup_alpha), ("--cutmix-alpha", r.cutmix_alpha)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{flag} must be a finite number >= 0 (0: off), got {value}")
        if not 0 <= r.mix_prob <= 1:
            raise ValueError(f"--mix-prob must be in [0, 1], got {r.mix_prob}")

    def results_dir(self) -> Path:
        """``<model-dir or ./results/<DATASET>>/<network>_gates_<bool>[_<run-name>]`` (the original
        README's folder names; ``--run-name`` gives each run of a sweep its own folder)."""
        parent = Path(self.output.model_dir) if self.output.model_dir else Path("results") / self.dataset_name
        name = f"{self.model.network}_gates_{bool(self.model.gates)}"
        return parent / (f"{name}_{self.output.run_name}" if self.output.run_name else name)

    def log_path(self) -> Path:
        """``--log-file`` or ``<results folder>/train.log``."""
        return Path(self.output.log_file) if self.output.log_file else self.results_dir() / "train.log"

    def task(self) -> str:
        """``--task-name``, or the data set's name."""
        return self.output.task_name or self.dataset_name

    def save(self, path: str | Path) -> Path:
        """Write the resolved configuration as JSON; ``train_<dataset>.py --config FILE`` re-runs it."""
        from data.store.atomic import atomic_write_text  # noqa: PLC0415  (keeps this module import-light)

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


# The optimiser and regularisation fields that change what a resumed run trains (--fine-tune: the groups' lr
# multipliers); a resume that changes one is told so (train.engine.run), since the checkpoint's state was built
# under the old values.
TRAINING_KNOBS = ("optimizer", "momentum", "weight_decay", "no_decay_norm_bias", "fine_tune",
                  "label_smoothing", "mixup_alpha", "cutmix_alpha", "mix_prob", "accumulate_grad", "clip_grad_norm",
                  "sync_bn", "ema_decay")


def changed_fields(saved: RunConfig, now: RunConfig, names: tuple[str, ...] = TRAINING_KNOBS) -> list[str]:
    """``'--flag NOW (was SAVED)'`` for each field of ``names`` whose value differs between two configurations."""
    flags = {f.name: f.metadata["flags"][0] for _, f in _group_fields()}
    old, new = saved.flat(), now.flat()
    return [f"{flags[n]} {new[n]} (was {old[n]})" for n in names if old[n] != new[n]]


def _resume_at(value: Any) -> int | str:
    """``--resume-epoch`` as an int N or "auto"."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--resume-epoch must be an epoch number or 'auto', got {value!r}") from None


def _in_range(flag: str, value: float, low: float, high: float, shown: str) -> None:
    """``low <= value < high``, else a one-line ``ValueError``."""
    if not low <= value < high:
        raise ValueError(f"{flag} must be in {shown}, got {value}")


def _choice(flag: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{flag} '{value}' is not one of {', '.join(choices)}")


def flatten(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``{group: {field: v}}`` and/or ``{field: v}`` → ``{field: v}``; unknown groups/keys are an error."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "dataset_name":
            continue
        if key in GROUPS and isinstance(value, Mapping):
            check_keys(value, f"{where} [{key}]")
            wrong = [k for k in value if FIELD_GROUP[k] != key]
            if wrong:
                raise ValueError(f"{where}: '{wrong[0]}' belongs to [{FIELD_GROUP[wrong[0]]}], not [{key}]")
            flat.update(value)
        elif key in FIELD_GROUP:
            flat[key] = value
        else:
            raise unknown_key_error(key, where)
    return flat


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A ``--config`` file (``.json``, or ``.yaml``/``.yml``) as ``{field: value}``; one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # noqa: PLC0415

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError / yaml.YAMLError: both are parse errors of the user's file
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ValueError(f"--config {path}: cannot parse ({first})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"--config {path}: expected a mapping of settings, found {type(data).__name__}")
    return flatten(data, f"--config {path}")


__all__ = ["RunConfig", "DataConfig", "ModelConfig", "OptimConfig", "RegularisationConfig", "ScheduleConfig",
           "OutputConfig", "HardwareConfig", "GROUPS", "FIELD_GROUP", "field_default", "check_keys", "read_config_file"]
