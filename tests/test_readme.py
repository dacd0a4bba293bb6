"""The README's command examples stay runnable: every script and module it shows answers ``--help``."""
from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# `python X.py ...` or `python -m pkg.mod [subcommand] ...` inside the README's ```bash blocks
COMMAND = re.compile(r"^\s*(?:\S+=\S+\s+)*python\s+(-m\s+(?P<module>[\w.]+)|(?P<script>[\w./-]+\.py))"
                     r"(?:\s+(?P<sub>[a-z]+)\b)?")
SUBCOMMANDS = {"data.convert": {"videos", "frames"}}


def readme_commands() -> list[tuple[str, str, str | None]]:
    """Distinct ``(kind, target, subcommand)`` of the README's bash examples (pytest itself excluded)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found: dict[tuple, None] = {}
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            m = COMMAND.match(line)
            if not m or m.group("module") == "pytest":
                continue
            if m.group("module"):
                sub = m.group("sub") if m.group("sub") in SUBCOMMANDS.get(m.group("module"), ()) else None
                found[("module", m.group("module"), sub)] = None
            else:
                found[("script", m.group("script"), None)] = None
    return list(found)


def test_the_readme_shows_commands():
    kinds = {kind for kind, _, _ in readme_commands()}
    assert kinds == {"module", "script"} and len(readme_commands()) >= 10


@pytest.mark.parametrize("kind,target,sub", readme_commands(), ids=lambda v: str(v))
def test_readme_command_answers_help(kind, target, sub, monkeypatch, capsys):
    argv = [sub, "--help"] if sub else ["--help"]
    monkeypatch.chdir(ROOT)
    if kind == "script":
        path = ROOT / target
        assert path.is_file(), f"README shows {target}, which does not exist"
        monkeypatch.setattr(sys, "argv", [str(path), *argv])
        monkeypatch.syspath_prepend(str(path.parent))
        run = lambda: runpy.run_path(str(path), run_name="__main__")  # noqa: E731
    else:
        monkeypatch.setattr(sys, "argv", [target, *argv])
        run = lambda: runpy.run_module(target, run_name="__main__", alter_sys=True)  # noqa: E731
    with pytest.raises(SystemExit) as info:
        run()
    assert info.value.code in (0, None), capsys.readouterr().err
    assert "usage:" in capsys.readouterr().out
