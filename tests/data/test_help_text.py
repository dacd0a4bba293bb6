"""``python -m data.<tool> --help`` reads as plain text: the module docstrings' reStructuredText markup is gone."""
from __future__ import annotations

import re
import runpy
import sys

import pytest

from data.prep.help_text import plain_help

MARKUP = re.compile(r"``|:[a-z]+(?::[a-z]+)?:`|`")


def test_plain_help_keeps_the_words_and_drops_the_markup():
    doc = ("Writes ``ROOT/labels/<name>.csv`` (``label,id,\nsplit``), see :func:`~data.prep.check.main`, "
           ":class:`the spec <data.catalog.spec.DatasetSpec>`, :data:`DATASETS` and `data.catalog.labels`.")
    assert plain_help(doc) == ("Writes ROOT/labels/<name>.csv (label,id,\nsplit), see main, the spec, DATASETS "
                               "and data.catalog.labels.")
    assert plain_help(None) == ""


@pytest.mark.parametrize("tool", ["prepare", "check", "convert", "synthetic", "index_db"])
def test_data_tool_help_has_no_markup(tool, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"data.{tool}", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module(f"data.{tool}", run_name="__main__", alter_sys=True)
    out = capsys.readouterr().out
    assert info.value.code == 0 and f"python -m data.{tool}" in out
    description = out.split("\n\n", 1)[1]  # after the usage block
    assert MARKUP.findall(description) == [], description[:400]
