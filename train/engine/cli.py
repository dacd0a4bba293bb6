"""The training command line, generated from the fields of `train.config`: each argument once, typed, grouped.

Booleans go through :func:`str2bool` (``--fine-tune False`` is False), lists are ``nargs='+'`` ints (commas
accepted too), ``--gpus`` is a count or a device list, and the original spellings are aliases
(docs/differences.md#31). :func:`parse_config` returns the validated :class:`~train.config.RunConfig`.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from data.catalog.spec import DatasetSpec
from train.config import GROUPS, RunConfig, check_keys, field_default, read_config_file

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
    """``--gpus`` as a count (``'4'``) or the original's device list (``'0,1,2,3'``).

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


GROUP_TITLES = {"data": "data", "model": "model and initialisation", "optimisation": "optimisation",
                "regularisation": "regularisation", "schedule": "schedule", "output": "output and monitoring",
                "hardware": "hardware"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help, unless the help already says what its default is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if re.search(r"\bdefault\b", action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _description(spec: DatasetSpec) -> str:
    """The parser's first line: the data set and its class count (``train.py``: classes from its dictionary)."""
    if spec.script == "train.py":
        return "Train an SRTG/MTNet/R3D video network on a prepared data set (classes from its label dictionary)."
    classes = "1 class" if spec.num_classes == 1 else f"{spec.num_classes} classes"
    return f"Train an SRTG/MTNet/R3D video network on {spec.name} ({classes})."


def _add_field(group: argparse._ArgumentGroup, f: Any) -> None:
    meta = f.metadata
    kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
    if meta["kind"] == "bool":
        kwargs.update(type=str2bool, nargs="?", const=True, metavar="BOOL")
    elif meta["kind"] == "ints":
        kwargs.update(nargs="+", type=str, metavar=meta["metavar"] or "N")
    else:
        annotation = str(f.type)
        kwargs["type"] = float if "float" in annotation else int if "int" in annotation else str
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
    group.add_argument(*meta["flags"], **kwargs)


def build_parser(spec: DatasetSpec, overrides: Mapping[str, Any] | None = None) -> argparse.ArgumentParser:
    """The parser of ``train_<dataset>.py``: every `train.config` field once, grouped, with its original
    spellings; defaults = the field's default < ``spec.defaults`` < ``overrides`` (a ``--config`` file)."""
    p = argparse.ArgumentParser(description=_description(spec), formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--config", type=str, metavar="FILE", default=None,
                   help="JSON or YAML file of settings (e.g. a run's config.json); the command line overrides it")
    for group_name, cls in GROUPS.items():
        group = p.add_argument_group(GROUP_TITLES[group_name])
        for f in fields(cls):
            if f.name == "variant" and not spec.variants:
                continue
            _add_field(group, f)
    check_keys(spec.defaults, f"data set '{spec.name}' defaults")
    defaults = {f.name: field_default(f.name) for cls in GROUPS.values() for f in fields(cls)}
    defaults.update(spec.defaults)
    defaults.update(overrides or {})
    if defaults.get("dataset") is None:
        defaults["dataset"] = spec.name
    if spec.variants:
        defaults["variant"] = int(defaults.get("variant") or max(spec.variants))
        p._option_string_actions["--variant"].choices = sorted(spec.variants)
    p.set_defaults(**defaults)
    return p


# Fields whose default is another field's value (filled by RunConfig.validate): derived -> source.
DERIVED = {"val_clip_length": "clip_length", "val_clip_size": "clip_size", "clip_warmup_length": "clip_length",
           "clip_warmup_size": "clip_size"}


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The destinations that ``argv`` sets explicitly (parsed again with every default suppressed)."""
    saved, defaults = {a.dest: a.default for a in parser._actions}, dict(parser._defaults)
    try:
        parser._defaults.clear()
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        parser._defaults.update(defaults)
        for action in parser._actions:
            action.default = saved[action.dest]


def follow_sources(args: dict[str, Any], spec: DatasetSpec, overrides: Mapping[str, Any], given: set[str]) -> None:
    """Precedence for derived fields too: command line > ``--config`` file > data set defaults > field defaults.
    A derived field (``--val-clip-size``) set at a lower level than its source (``--clip-size``) follows the
    source: ``--clip-size 64`` validates at 64², not at the data set's ``val_clip_size``."""
    def level(name: str) -> int:
        return 3 if name in given else 2 if name in overrides else 1 if name in spec.defaults else 0

    for derived, source in DERIVED.items():
        if level(source) > level(derived):
            args[derived] = None  # RunConfig.validate fills it from the source


def parse_config(spec: DatasetSpec, argv: Sequence[str] | None = None) -> RunConfig:
    """The run configuration of ``train_<dataset>.py`` from ``argv`` (default ``sys.argv[1:]``).

    Bad values exit through argparse with a one-line ``error:`` naming the flag (as ``--help`` does).
    Precedence: command line > ``--config`` file > data set defaults > field defaults, derived fields included
    (:func:`follow_sources`).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    parser = build_parser(spec)
    try:
        overrides = read_config_file(known.config) if known.config else {}
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    parser = build_parser(spec, overrides)
    args = vars(parser.parse_args(argv))
    args.pop("config")
    follow_sources(args, spec, overrides, given_flags(parser, argv))
    try:
        args["lr_steps"] = int_list(args["lr_steps"])
        args["train_frame_interval"] = int_list(args["train_frame_interval"])
        parse_gpus(args["gpus"])
        name = spec.with_variant(args["variant"]).name if spec.variants else spec.name
        return RunConfig.from_flat(args, dataset_name=name, where="command line")
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))
    raise AssertionError("unreachable")  # parser.error exits
