"""Shared pieces of evaluation, prediction and export: model + checkpoint loading, class names, test views.

Test views follow PySlowFast/MMAction2 multi-view testing: ``clips`` uniformly spaced clips
(`data.pipeline.video_sampler.uniform_views`) × ``crops`` spatial crops of ``size``² taken along the longer side of
frames whose shorter side was resized to ``short_side`` (default ``size``): 1 crop = centre, 3 = left/centre/right
(top/centre/bottom for portrait frames). The crops are the data transforms' (`data.pipeline.video_transforms`:
`view_crop_boxes`, `resized_crop`, `normalise`); identical views (the crops of a square frame, the repeated clips
of a short video) are computed once (:func:`unique_views`). Frames are normalised ``(x/255 - mean)/std`` in the
channel order of the model's input convention (``model.input_spec``, stored in the checkpoint as ``input_spec``;
checkpoints without one, the original's included, get the network's, i.e. BGR with `network.config`'s mean/std).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from data.catalog.datasets import get_dataset, spec_from_dict
from data.catalog.labels import iter_rows, load_dictionary
from data.catalog.spec import DatasetSpec
from data.pipeline.video_sampler import uniform_views
from data.pipeline.video_transforms import normalise, resized_crop, view_crop_boxes
from data.store.atomic import atomic_write_text
from data.store.video_io import VideoDecodeError, iter_frames, probe
from network.config import InputSpec, input_spec_of
from network.pretrained import import_public
from network.registry import build_model
from network.weights import LoadReport, load_partial
from train.config import RunConfig
from train.results.checkpoint import EMA_KEY, load_checkpoint_file

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model in eval mode on its device, with what its checkpoint said about itself."""

    model: nn.Module
    network: str
    num_classes: int
    classes: list[str] = field(default_factory=list)  # empty for original checkpoints (they store none)
    config: RunConfig | None = None  # the training run's configuration (None for original checkpoints)
    dataset: DatasetSpec | None = None  # the data set it was trained on (None for original checkpoints)
    epoch: int | None = None
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    channel_order: str = "BGR"  # with mean/std: the model's input_spec


def head_classes(state_dict: dict[str, Any]) -> int | None:
    """Rows of the classifier (``fc.weight``, any wrapper prefix) or None when there is no such key."""
    for key, value in state_dict.items():
        if key == "fc.weight" or key.endswith(".fc.weight"):
            return int(value.shape[0])
    return None


WEIGHTS = ("model", "ema")  # --weights: the trained weights, or the EMA of a run trained with --ema-decay


def select_weights(ckpt: dict[str, Any], weights: str, checkpoint: str | Path | None) -> dict[str, Any]:
    """The state_dict that ``--weights`` names: ``state_dict`` (model) or ``ema_state_dict`` (ema)."""
    if weights not in WEIGHTS:
        raise ValueError(f"--weights '{weights}' is not one of {', '.join(WEIGHTS)}")
    if weights == "model":
        return ckpt["state_dict"]
    if not ckpt.get(EMA_KEY):
        raise ValueError(f"{checkpoint}: holds no EMA weights (trained without --ema-decay); use --weights model")
    return ckpt[EMA_KEY]


def load_model(checkpoint: str | Path | None, network: str | None = None, *, num_classes: int | None = None,
               gates: bool | None = None, device: torch.device | str = "cpu",
               contents: dict[str, Any] | None = None, weights: str = "model") -> LoadedModel:
    """Build the checkpoint's network and load its weights (ours or an original ``module.``-prefixed one) in
    eval mode. Every argument left None comes from the checkpoint: ``network`` (saved name), ``gates`` (its
    configuration), the class count (``fc.weight`` rows); original checkpoints need ``network``. A file of public
    weights (`network.pretrained`: torchvision, IG65M, 3D-ResNets, VMZ) is converted exactly for the ``network``
    it fits (``tv_r3d_18`` for torchvision's ``r3d_18``).

    ``contents``: the checkpoint dict when the caller has read it already
    (`train.results.checkpoint.load_checkpoint_file`).
    ``weights``: 'model' (the trained weights) or 'ema' (their average, :func:`select_weights`).
    """
    if contents is not None:
        ckpt = contents
    else:
        ckpt = load_checkpoint_file(checkpoint) if checkpoint is not None else {"state_dict": {}}
    state = select_weights(ckpt, weights, checkpoint)
    config = RunConfig.from_saved(ckpt)
    saved_net = ckpt.get("network") or (config.model.network if config else None)
    network = network or saved_net
    if not network:
        raise ValueError(f"{checkpoint}: the checkpoint does not name its network (an original checkpoint); "
                         "pass --network")
    if saved_net and str(saved_net).lower() != network.lower():
        logger.warning("%s was saved by network '%s', loading it into '%s'", checkpoint, saved_net, network)
    rows = head_classes(state)
    if rows is not None and num_classes is not None and rows != num_classes:
        logger.warning("%s: the checkpoint's classifier has %d classes, not %d: using %d", checkpoint, rows,
                       num_classes, rows)
    n = rows or num_classes or int(ckpt.get("num_classes") or 0)
    if not n:
        raise ValueError(f"{checkpoint}: no 'fc.weight' in the checkpoint; pass --num-classes")
    if gates is None:
        gates = bool(config.model.gates) if config else False
    gate_options = ({"gate_similarity": config.model.gate_similarity, "gate_temperature": config.model.gate_temperature}
                    if gates and config else {})
    model = build_model(network, n, gates=gates, **gate_options)
    if checkpoint is None:
        logger.warning("no checkpoint given: '%s' has random weights", network)
    # a checkpoint that does not name its network may be a publisher's file: converted when it fits `network`
    elif ckpt.get("network") or import_public(model, checkpoint, network, only_if_fits=True) is None:
        _check_complete(load_partial(model, state), model, checkpoint, network)
    spec = InputSpec.from_dict(ckpt["input_spec"]) if ckpt.get("input_spec") else input_spec_of(model)
    model.input_spec = spec
    classes = [str(c) for c in ckpt.get("classes") or []]
    dataset = spec_from_dict(ckpt["dataset"]) if ckpt.get("dataset") else None
    return LoadedModel(model.to(device).eval(), network, n, classes, config, dataset, ckpt.get("epoch"),
                       list(spec.mean), list(spec.std), spec.channel_order)


def _check_complete(report: LoadReport, model: nn.Module, checkpoint: str | Path, network: str) -> None:
    """Inference needs every weight: a partial load (fine for fine-tuning) is an error here.

    One exception: released ``srtg_*`` checkpoints were trained by the original factory as plain backbones
    (docs/differences.md#5) and have no SR weights; the model then runs with its SR blocks off, as it was trained.
    """
    if not report.loaded:
        raise ValueError(f"{checkpoint}: no tensor matches network '{network}'; pass the network it was trained as")
    problems = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
                (("with another shape", report.mismatched), ("unknown to the model", report.unexpected))
                if keys]
    fresh = report.fresh_sr_blocks
    missing = [k for k in report.missing if not any(k.startswith(block + ".") for block in fresh)]
    if missing:
        problems.append(f"{len(missing)} model tensors missing (e.g. {missing[0]})")
    if problems:
        raise ValueError(f"{checkpoint}: does not fit network '{network}': {'; '.join(problems)}; "
                         "pass the --network (and --gates) it was trained with")
    if fresh:
        if not hasattr(model, "set_recursion"):
            raise ValueError(f"{checkpoint}: no weights for the SR blocks of '{network}'")
        model.set_recursion(False)
        logger.warning("%s has no SR-block weights (an original srtg_* checkpoint, trained as the plain backbone): "
                       "running '%s' with its SR blocks off", checkpoint, network)


def check_classes(loaded: LoadedModel, dataset_classes: dict[str, int], where: str) -> None:
    """Raise ``ValueError`` when the data set's labels cannot be scored by the model's classifier."""
    if loaded.classes:
        for label, index in dataset_classes.items():
            if index >= len(loaded.classes) or loaded.classes[index] != label:
                have = loaded.classes[index] if index < len(loaded.classes) else "nothing"
                raise ValueError(f"{where}: class {index} is '{label}' in the data set but '{have}' in the checkpoint; "
                                 "evaluate on the data set the model was trained on (same class dictionary JSON)")
    too_big = [label for label, index in dataset_classes.items() if index >= loaded.num_classes]
    if too_big:
        raise ValueError(f"{where}: {len(dataset_classes)} classes in the data set but the checkpoint's classifier "
                         f"has {loaded.num_classes} (e.g. '{too_big[0]}'); use the matching checkpoint or --spec")


def load_class_names(path: str | Path) -> list[str]:
    """Class names by index from a ``{label: index}`` JSON (data.catalog.labels) or a label CSV (first-appearance
    order)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labels file not found; pass the *dictionary.json or the train CSV")
    if path.suffix.lower() == ".json":
        mapping = load_dictionary(path)
    else:
        mapping = {}
        for row in iter_rows(path, timeslices=False):
            mapping.setdefault(row.label, len(mapping))
    names = [""] * len(mapping)
    for label, index in mapping.items():
        if not 0 <= index < len(mapping) or names[index]:
            raise ValueError(f"{path}: class indices are not 0..{len(mapping) - 1} without repeats "
                             f"('{label}': {index})")
        names[index] = label
    return names


def resize_short(frames: np.ndarray, short_side: int) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 → ``(T, 3, H', W')`` uint8 with ``min(H', W') = short_side`` (antialiased bilinear)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    scale = short_side / min(h, w)
    out = (short_side, max(short_side, round(w * scale))) if h <= w else (max(short_side, round(h * scale)), short_side)
    return resized_crop(x, 0, 0, h, w, out)


@dataclass(frozen=True)
class ViewConfig:
    """How to cut a video into test views: ``clips`` × ``crops`` clips of ``clip_length`` frames, ``size``² px."""

    clip_length: int
    size: int
    frame_interval: int = 1
    clips: int = 1
    crops: int = 1
    short_side: int | None = None

    def frame_indices(self, n_frames: int) -> list[list[int]]:
        """0-based frame indices of each temporal clip."""
        return uniform_views(n_frames, self.clip_length, self.frame_interval, self.clips)

    @property
    def views(self) -> int:
        return self.clips * self.crops


def view_config(config: RunConfig | None, *, clip_length: int | None, clip_size: int | None,
                frame_interval: int | None, clips: int, crops: int, short_side: int | None = None,
                dataset: DatasetSpec | None = None) -> ViewConfig:
    """Test views: explicit arguments win, then the training run's validation clips (``config``), then the
    defaults of ``dataset`` (original checkpoints store no configuration), else of HACS (the original's)."""
    if config is None:
        spec = dataset or get_dataset("hacs")
        config = RunConfig.from_flat(dict(spec.defaults), spec.name)
    d = config.data
    return ViewConfig(clip_length=int(clip_length or d.val_clip_length), size=int(clip_size or d.val_clip_size),
                      frame_interval=int(frame_interval or d.val_frame_interval), clips=clips, crops=crops,
                      short_side=short_side)


def make_views(frames: np.ndarray, cfg: ViewConfig, mean: Sequence[float], std: Sequence[float],
               channel_order: str = "BGR") -> torch.Tensor:
    """Frames of all clips ``(clips·T, H, W, 3)`` uint8 BGR (clip after clip) → views ``(clips·crops, 3, T, S, S)``
    normalised in ``channel_order``.

    View ``v`` is clip ``v // crops``, crop ``v % crops``.
    """
    views, inverse = unique_views(frames, cfg, mean, std, channel_order)
    return views[inverse]


def unique_views(frames: np.ndarray, cfg: ViewConfig, mean: Sequence[float], std: Sequence[float],
                 channel_order: str = "BGR", clips: Sequence[Sequence[int]] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`make_views` without computing a view twice: ``(views (U, 3, T, S, S), inverse (clips·crops,))``
    with view ``v`` = ``views[inverse[v]]``. Two views are the same when they read the same frames (``clips``:
    each clip's frame indices; by default every clip counts as different) through the same crop box."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (clips·T, 3, H, W)
    boxes = view_crop_boxes(x.shape[2], x.shape[3], cfg.size, cfg.crops, cfg.short_side)
    parts = x.split(cfg.clip_length)
    keys = [tuple(c) for c in clips] if clips is not None else [(i,) for i in range(len(parts))]
    if len(keys) != len(parts):
        raise ValueError(f"{len(parts)} clips of frames but {len(keys)} lists of frame indices")
    index: dict[tuple, int] = {}
    views, inverse = [], []
    for key, clip in zip(keys, parts):
        for box in boxes:
            if (key, box) not in index:
                index[(key, box)] = len(views)
                views.append(normalise(resized_crop(clip, *box, (cfg.size, cfg.size)), mean, std, channel_order))
            inverse.append(index[(key, box)])
    return torch.stack(views), torch.tensor(inverse, dtype=torch.long)


def decode_clip_frames(path: str | Path, cfg: ViewConfig) -> tuple[np.ndarray, int]:
    """Decode a video file with PyAV and return the frames of ``cfg``'s clips ``(clips·T, H', W', 3)`` uint8 BGR
    (shorter side already resized to ``cfg.short_side or cfg.size``) and the video's frame count.

    Only the needed frames are kept: the count comes from the container; when it is missing or wrong the file
    is decoded a second time with the true count. Raises ``data.store.video_io.VideoDecodeError`` naming the file.
    """
    side = cfg.short_side or cfg.size

    def gather(n_frames: int) -> tuple[dict[int, np.ndarray], int]:
        wanted = {i for clip in cfg.frame_indices(n_frames) for i in clip} if n_frames > 0 else set()
        kept, count = {}, 0
        for i, frame in enumerate(iter_frames(path, decoder="pyav")):
            if i in wanted:
                kept[i] = resize_short(frame[None], side)[0].permute(1, 2, 0).numpy()
            count = i + 1
        return kept, count

    if not Path(path).is_file():
        raise VideoDecodeError(f"{path}: file not found")
    expected = int(probe(path).get("frames") or 0)
    kept, count = gather(expected)
    if count == 0:
        raise VideoDecodeError(f"{path}: no frames could be decoded")
    if count != expected:
        logger.debug("%s: container says %d frames, decoded %d; decoding again", path, expected, count)
        kept, count = gather(count)
    indices = [i for clip in cfg.frame_indices(count) for i in clip]
    return np.stack([kept[i] for i in indices]), count


@torch.inference_mode()
def view_probabilities(model: nn.Module, views: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Softmax probabilities ``(V, K)`` (float32, CPU) of views ``(V, 3, T, S, S)``, ``batch_size`` views at a time."""
    out = [model(chunk.to(device, non_blocking=True)).float().softmax(dim=1).cpu()
           for chunk in views.split(max(1, batch_size))]
    return torch.cat(out)


def dump_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON (UTF-8) via a temporary file and rename."""
    return atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
