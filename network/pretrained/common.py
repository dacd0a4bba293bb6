"""What every source shares: reading a weight file, the strict loader, and describing what stayed random.

Imports of public weights are exact or refused (timm's and MMAction2's converters): after the names are mapped,
every backbone tensor of the model must be filled with a tensor of its shape, and every tensor of the file must
land somewhere. Only the classifier may differ (a new head for new classes), SR blocks (``.sar.``) keep their
initialisation, and BatchNorm's ``num_batches_tracked`` counters are not weights (files from before PyTorch 0.4.1
have none).
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from network.weights import LOAD_ERRORS, strip_wrappers

logger = logging.getLogger("network.pretrained")

HEAD_KEYS = ("fc.weight", "fc.bias")
COUNTER = "num_batches_tracked"
# containers that hold the weights one level down (ours and the original's, 3D-ResNets', VMZ's training files)
NESTED = ("state_dict", "model")
INPUT_SPEC_KEY = "input_spec"  # our checkpoints: the frames the weights were trained on (network.config.InputSpec)


@dataclass
class WeightFile:
    """A weight file as read: plain-named tensors, whether a wrapper prefix was stripped, the container's keys."""

    path: Path
    state: dict[str, torch.Tensor]
    wrapped: bool = False  # keys started with ``module.`` (DataParallel) or ``_orig_mod.``
    container: dict[str, Any] = field(default_factory=dict)  # non-weight entries: 'epoch', 'network', 'input_spec'...


def read_weights(path: str | Path) -> WeightFile:
    """Read ``path`` on CPU (``weights_only``); a missing, truncated or foreign file is a one-line ``ValueError``
    (``FileNotFoundError`` when absent)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        if path.suffix == ".pkl":
            hint = "Caffe2 .pkl blobs are not read: use the publisher's PyTorch .pth conversion"
        elif "Unsupported global" in str(exc):  # e.g. a training file holding argparse arguments
            hint = ("it holds Python objects besides tensors, which are not unpickled (weights_only); load it "
                    "yourself and torch.save its state_dict")
        else:
            hint = "the file is truncated or not a PyTorch file; download it again"
        raise ValueError(f"{path}: torch.load failed ({exc.__class__.__name__}): {hint}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    container: dict[str, Any] = {}
    for key in NESTED:
        if isinstance(obj.get(key), Mapping):
            container = {k: v for k, v in obj.items()
                         if k != key and (not isinstance(v, Mapping) or k == INPUT_SPEC_KEY)}
            obj = obj[key]
            break
    tensors = {str(k): v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        raise ValueError(f"{path}: holds no tensors (not a model's weights)")
    state = {strip_wrappers(k): v for k, v in tensors.items()}
    return WeightFile(path, state, wrapped=any(k != strip_wrappers(k) for k in tensors), container=container)


def head_rows(state: Mapping[str, torch.Tensor]) -> int | None:
    """Classes of the file's classifier (``fc.weight`` rows), None without one."""
    weight = state.get("fc.weight")
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


def is_backbone(key: str) -> bool:
    """A tensor the import must fill: not the classifier, not an SR block, not a BN counter."""
    return key not in HEAD_KEYS and ".sar." not in f".{key}" and not key.endswith(COUNTER)


def _examples(keys: list[str], keep: int = 3) -> str:
    return ", ".join(keys[:keep]) + (f", ... ({len(keys)} in all)" if len(keys) > keep else "")


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> list[str]:
    """Load the mapped ``state`` into ``model``: every backbone tensor filled and every file tensor used, or one
    ``ValueError`` line naming what did not match (``what`` names the file and its source). The head is loaded
    when its shape fits and kept new otherwise; returns the keys loaded."""
    own = model.state_dict()
    missing = [k for k in own if is_backbone(k) and k not in state]
    shape = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if is_backbone(k) and k in state and state[k].shape != own[k].shape]
    unknown = [k for k in state if k not in own and not k.endswith(COUNTER) and k not in HEAD_KEYS]
    problems = [f"{len(keys)} {label}: {_examples(keys)}" for label, keys in
                (("model tensors not in the file", missing), ("with another shape", shape),
                 ("file tensors the model has no place for", unknown)) if keys]
    if problems:
        raise ValueError(f"{what} does not fit '{type(model).__name__}' exactly: {'; '.join(problems)}")
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(usable, strict=False)
    new_head = [k for k in HEAD_KEYS if k in own and k not in usable]
    if new_head:
        rows = head_rows(state)
        logger.info("%s: new %d-way classifier (the file's has %s classes)", what,
                    int(own["fc.weight"].shape[0]), rows if rows is not None else "no")
    sr = sorted({k.split(".sar.")[0] for k in own if ".sar." in k})
    if sr:
        logger.info("%s: %d SR blocks keep their identity initialisation (the file has no SR weights)", what, len(sr))
    return list(usable)


def _module_kind(model: nn.Module, key: str) -> str:
    owner = key.rsplit(".", 1)[0]
    try:
        module = model.get_submodule(owner)
    except AttributeError:
        return "tensors"
    if isinstance(module, nn.Linear):
        return "classifier"
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return "BN parameters"
    if isinstance(module, nn.Conv3d):
        return "downsample conv weights" if ".downsample." in f".{owner}." else "conv weights"
    return "recurrent weights" if ".sar." in f".{owner}." else "tensors"


def _span(tops: list[str]) -> str:
    """``['layer1', 'layer2', 'layer4']`` -> ``layer1-2, layer4``; other names as they are."""
    numbered = sorted({int(m.group(1)) for t in tops if (m := re.fullmatch(r"layer(\d+)", t))})
    runs, out = [], [t for t in dict.fromkeys(tops) if not re.fullmatch(r"layer\d+", t)]
    for n in numbered:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    out += [f"layer{a}" if a == b else f"layer{a}-{b}" for a, b in runs]
    return ", ".join(out)


def describe_random(model: nn.Module, keys: list[str]) -> str:
    """Group model tensors by top-level module and kind: ``layer1-4 conv weights (16 tensors), stem BN ...``."""
    groups: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for key in keys:
        kind = _module_kind(model, key)
        groups[kind].append(key.split(".", 1)[0])
        counts[kind] += 1
    return ", ".join(f"{_span(tops)} {kind} ({counts[kind]} tensors)" for kind, tops in groups.items())


DEPTH_OF = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152, (3, 24, 36, 3): 200}


def layer_counts(state: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """Residual blocks per stage, from the ``layerX.Y.`` key prefixes."""
    blocks: dict[int, set[int]] = defaultdict(set)
    for key in state:
        if m := re.match(r"layer(\d+)\.(\d+)\.", key):
            blocks[int(m.group(1))].add(int(m.group(2)))
    return tuple(len(blocks[i]) for i in sorted(blocks))


def depth_of(state: Mapping[str, torch.Tensor], bottleneck: bool) -> int | None:
    """The ResNet depth of the file's stage counts (``(3, 4, 6, 3)`` is 34 with basic blocks, 50 with
    bottlenecks), None for other counts."""
    depth = DEPTH_OF.get(layer_counts(state))
    return 50 if depth == 34 and bottleneck else depth


def rename(state: Mapping[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Apply the first matching ``(pattern, replacement)`` rule to every key (``re.fullmatch``); others stay."""
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            if re.fullmatch(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value
    return out
