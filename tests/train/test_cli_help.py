"""``--help`` of the training scripts: each option states its default once, and the first line reads right."""
from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

from data.catalog.datasets import get_dataset, list_datasets
from data.catalog.spec import DatasetSpec
from train.engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def option_helps(text: str) -> dict[str, str]:
    """Each option's help in ``--help`` output, whitespace-normalised, keyed by its first flag."""
    helps: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^  (-{1,2}[\w-]+)", line)
        if m:
            current = m.group(1)
            helps[current] = [line]
        elif current and line.startswith("   "):
            helps[current].append(line)
        else:
            current = None
    return {flag: " ".join(" ".join(lines).split()) for flag, lines in helps.items()}


@pytest.mark.parametrize("name", list_datasets())
def test_every_option_shows_one_default(name):
    helps = option_helps(build_parser(get_dataset(name)).format_help())
    assert len(helps) > 50
    options = {flag: text for flag, text in helps.items() if flag not in ("-h", "--help")}
    assert [flag for flag, text in options.items() if "default" not in text] == []
    assert {flag: text for flag, text in options.items() if text.count("default:") > 1} == {}
    assert "(default: None)" not in helps["--precision"]  # its help names the default of each device
    assert "(default: ./results/<DATASET>)" in helps["--model-dir"]  # the help's own wording wins over None


def test_the_first_line_counts_classes_in_english():
    spec = get_dataset("ucf101")
    assert "on UCF101 (101 classes)." in build_parser(spec).format_help()
    one = DatasetSpec(name="ONE", num_classes=1, folder="f", train_csv="t.csv", val_csv="v.csv", script="x.py")
    assert "on ONE (1 class)." in build_parser(one).format_help()


def test_train_py_help_takes_classes_from_the_dictionary(monkeypatch, capsys):
    path = ROOT / "train.py"
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(path), run_name="__main__")
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0
    assert "classes from its label dictionary" in out and "(1 classes)" not in out
