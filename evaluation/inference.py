"""Shared pieces of evaluation, prediction and export: the model from a checkpoint, class names, JSON output.

The model's input convention (``model.input_spec``: channel order, mean, std) comes from the checkpoint's
``input_spec``; checkpoints without one, the original's included, get the network's, i.e. BGR with
`network.config`'s mean/std. The test views it is fed are cut by `evaluation.views`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from data.catalog.datasets import spec_from_dict
from data.catalog.labels import iter_rows, load_dictionary
from data.catalog.spec import DatasetSpec
from data.store.atomic import atomic_write_text
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
    return sorted(mapping, key=mapping.__getitem__)  # indices 0..n-1, each once (load_dictionary checks it)


def dump_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON (UTF-8) via a temporary file and rename."""
    return atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
