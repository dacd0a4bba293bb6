"""Recognise a weight file's source, map its names and load it strictly: ``from_pretrained`` and the training hook.

A file is recognised by its key layout and shapes (3D-ResNets' ``conv1``/``bn1`` names, VMZ's expansion-4
bottlenecks, IG65M's Caffe2 (2+1)D widths, torchvision's bare convs); files written by this project or the
original (wrapped in ``module.`` or holding ``network``) are ``original``. A torchvision ``r2plus1d_18`` and a
bare state_dict of our ``r2plus1d_18`` have the same keys: pass the source when it is not torchvision's.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import torch.nn as nn

from network.config import InputSpec, input_spec_of
from network.pretrained import ig65m, resnets3d, torchvision, vmz
from network.pretrained.common import (
    INPUT_SPEC_KEY,
    WeightFile,
    head_rows,
    is_backbone,
    layer_counts,
    load_strict,
    logger,
    read_weights,
)
from network.registry import create_model
from network.weights import load_partial, strip_wrappers

SOURCES: dict[str, ModuleType] = {m.NAME: m for m in (torchvision, ig65m, resnets3d, vmz)}
ORIGINAL = "original"
SOURCE_NAMES = (*SOURCES, ORIGINAL)
# the order files are tried in: most specific layout first
_DETECT = (resnets3d, vmz, ig65m, torchvision)


def _source(name: str) -> ModuleType | None:
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown weight source '{name}'; choose one of {', '.join(SOURCE_NAMES)}")
    return SOURCES.get(name)


def detect(wf: WeightFile) -> tuple[str, str | None]:
    """``(source, publisher's arch)`` of a read file; ``('original', None)`` for ours and the original's,
    ``('unknown', None)`` when no layout matches."""
    arch = resnets3d.recognise(wf.state)
    if arch:
        return resnets3d.NAME, arch
    if wf.wrapped or "network" in wf.container:
        return ORIGINAL, None
    for module in _DETECT[1:]:
        arch = module.recognise(wf.state)
        if arch:
            return module.NAME, arch
    return "unknown", None


def _arch_line(source: str, arch: str) -> str:
    archs = SOURCES[source].ARCHS
    return "" if arch in archs else f" (importable {source} archs: {', '.join(archs)})"


def _check_file(wf: WeightFile, source: str, arch: str | None) -> tuple[str, str | None]:
    """Refuse, in one line, a file from another source or of another architecture/depth than asked."""
    found, found_arch = detect(wf)
    if found != source and found != "unknown":
        what = f"a {found} {found_arch} file" if found_arch else "a checkpoint of this project or the original"
        raise ValueError(f"{wf.path}: {what}, not {source} weights; pass the source '{found}'"
                         + (f" (--pretrained-source {found})" if found != ORIGINAL else ""))
    if arch is not None and found_arch is not None and found_arch != arch:
        raise ValueError(f"{wf.path}: a {source} {found_arch} file (blocks per stage {layer_counts(wf.state)}), "
                         f"not {arch}; pass arch '{found_arch}'{_arch_line(source, found_arch)}")
    return found, found_arch


def network_for(source: str, arch: str) -> str:
    """Our registered network for the publisher's ``arch`` (``('torchvision', 'r3d_18')`` -> ``tv_r3d_18``)."""
    module = _source(source)
    if module is None:
        return arch
    if arch not in module.ARCHS:
        raise ValueError(f"{source} arch '{arch}' is not importable; choose one of {', '.join(module.ARCHS)}")
    return module.ARCHS[arch]


def from_pretrained(path: str | Path, source: str, arch: str, num_classes: int | None = None,
                    srtg: bool = False) -> nn.Module:
    """The network of ``source``'s ``arch`` with the file's weights, loaded exactly (or a one-line error).

    ``source``: torchvision, ig65m, 3d-resnets, vmz (or original: ``arch`` is then one of our network names).
    ``num_classes=None`` keeps the publisher's classifier; another count gets a new head. ``srtg=True`` returns
    the ``srtg_`` twin, its SR blocks at their identity initialisation. The model carries its publisher's input
    convention as ``model.input_spec``.
    """
    module = _source(source)
    network = network_for(source, arch)
    wf = read_weights(path)
    if module is not None:
        _check_file(wf, source, arch)
        state = module.to_ours(wf.state, arch)
    else:
        state = wf.state
    name = f"srtg_{network.removeprefix('srtg_')}" if srtg else network
    model = create_model(name, num_classes=num_classes or head_rows(state) or 400)
    load_strict(model, state, f"{wf.path} ({source} {arch})")
    return model


def _check_input_spec(wf: WeightFile, model: nn.Module, network: str, allow: bool) -> None:
    """A checkpoint of ours trained on other frames than ``model`` takes (channel order, mean, std: its network
    computes something else with the same names, e.g. ``tv_r3d_18`` into ``r3d_18``) is refused unless ``allow``
    (then a WARNING)."""
    saved = wf.container.get(INPUT_SPEC_KEY)
    if not isinstance(saved, Mapping):
        return  # the original's checkpoints and public files: no convention stored
    theirs, ours = InputSpec.from_dict(saved), input_spec_of(model)
    if theirs == ours:
        return
    trained = wf.container.get("network") or "another network"
    message = (f"{wf.path}: trained as '{trained}' on {theirs.channel_order} frames (mean {list(theirs.mean)}), but "
               f"'{network}' takes {ours.channel_order} frames (mean {list(ours.mean)}): its weights would see other "
               "inputs")
    if not allow:
        raise ValueError(f"{message}; pass --network {trained} (or --allow-partial True to load it anyway)")
    logger.warning("%s; loading it anyway (--allow-partial)", message)


def import_public(model: nn.Module, path: str | Path, network: str, source: str | None = None,
                  allow_other_network: bool = False, only_if_fits: bool = False) -> WeightFile | None:
    """Initialise a training ``model`` (``network``) from a public weight file, exactly; None when the file is
    ours or the original's (the caller loads it by name and shape).

    The file must be of ``network``'s publisher and depth (``tv_r3d_18`` or ``srtg_tv_r3d_18`` for torchvision's
    ``r3d_18``): another network would compute something else with the same tensors (a stem pool, BN eps), so
    that is refused unless ``allow_other_network`` (``--allow-partial True``), which loads what fits with a warning.
    ``only_if_fits``: return None instead (with a warning) when the file's names are the model's own (inference,
    where a bare state_dict of our ``r2plus1d_18`` has torchvision's names); other files are refused as above.
    """
    wf = read_weights(path)
    _check_input_spec(wf, model, network, allow_other_network)
    if source is not None and _source(source) is None:
        return None
    detected = source is None
    found, arch = detect(wf) if detected else _check_file(wf, source, None)
    source = source or found
    if source not in SOURCES:
        return None
    module = SOURCES[source]
    base = network.lower().removeprefix("srtg_")
    arch = arch or next((a for a, n in module.ARCHS.items() if n == base), None)
    expected = module.ARCHS.get(arch or "")
    # a bare state_dict of our R(2+1)D networks has torchvision's names: only the user can tell them apart
    same_keys = ({k for k in wf.state if is_backbone(k)}
                 == {strip_wrappers(k) for k in model.state_dict() if is_backbone(strip_wrappers(k))})
    if expected != base and only_if_fits and same_keys:
        if expected:
            logger.warning("%s looks like %s %s weights, which fit '%s'; loading it by name into '%s' instead (if it "
                           "is that publisher's file, pass --network %s)", wf.path, source, arch, expected, network,
                           expected)
        return None
    if expected != base:
        fits = f"--network {expected} or srtg_{expected}" if expected else f"no network here{_arch_line(source, arch)}"
        message = f"{wf.path}: {source} {arch or '?'} weights fit {fits}, not '{network}'"
        ours = (f"; if it is a state_dict of this project's '{network}', pass --pretrained-source original"
                if detected and same_keys else "")
        if not expected:
            raise ValueError(message + (ours or f"; {source} weights go into {', '.join(module.ARCHS.values())}"))
        if not allow_other_network:
            anyway = "" if only_if_fits else " (or --allow-partial True to load what fits anyway)"
            raise ValueError(f"{message}; pass that --network{anyway}{ours}")
        logger.warning("%s; loading the tensors that fit by name and shape (--allow-partial)", message)
        load_partial(model, module.to_ours(wf.state, arch), log=logger)
        return wf
    load_strict(model, module.to_ours(wf.state, arch), f"{wf.path} ({source} {arch})")
    logger.info("Initialised '%s' from %s %s weights `%s'", network, source, arch, wf.path)
    return wf
