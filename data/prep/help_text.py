"""Module docstrings as ``--help`` text: reStructuredText markup removed, so a terminal shows plain words.

The ``python -m data.<tool>`` commands describe themselves with their module's docstring, which is written for
Sphinx (````code````, ``:func:`name```). :func:`plain_help` keeps the words and drops the markup.
"""
from __future__ import annotations

import re

# :role:`text <target>` -> text; :role:`~pkg.mod.name` -> name; :role:`pkg.name` -> pkg.name
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(?:([^`<]*?)\s*<[^`>]*>|~(?:[\w.]*\.)?([^`]*)|([^`]*))`")
_LITERAL = re.compile(r"``(.+?)``", re.S)
_DEFAULT_ROLE = re.compile(r"(?<![\w`])`([^`\n]+)`(?![\w`])")


def plain_help(doc: str | None) -> str:
    """``doc`` without roles, double-backtick literals and single-backtick references (their text kept)."""
    text = doc or ""
    text = _ROLE.sub(lambda m: next(g for g in m.groups() if g is not None), text)
    text = _LITERAL.sub(r"\1", text)
    return _DEFAULT_ROLE.sub(r"\1", text)
