"""The user docs stay usable: every command they show answers ``--help``, and every relative link resolves.

Commands are read from the ```bash blocks of ``README.md`` and ``docs/*.md``: ``python X.py ...``,
``python -m pkg.mod [subcommand] ...``, also behind ``srun``/``torchrun ...``/``VAR=value``. Each runs in-process
with ``--help`` (a subcommand keeps its place before it). Links are the markdown ``[text](target)`` and
``![alt](target)`` outside code: a relative file must exist, and an ``#anchor`` into a markdown file must name
one of its headings (GitHub's slugs) or an ``<a id="...">``. The same holds for ``docs/<page>.md#N`` cited in the
code's comments.
"""
from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUBCOMMANDS = {"data.convert": {"videos", "frames"}}
# launchers and settings that may stand before `python` or the script on a command line
PREFIX = re.compile(r"^(?:\S+=\S+\s+|srun\s+|time\s+|torchrun(?:\s+--?[\w-]+(?:[ =](?!\S+\.py\b)\S+)?)*\s+)*")
PYTHON = re.compile(r"^python3?\s+(?:-m\s+(?P<module>[\w.]+)|(?P<script>[\w./-]+\.py))(?:\s+(?P<sub>[a-z]+)\b)?")
SCRIPT = re.compile(r"^(?P<script>[\w./-]+\.py)\b")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def bash_lines(text: str) -> list[str]:
    return [line for lang, body in FENCE.findall(text) if lang == "bash" for line in body.splitlines()]


def parse_command(line: str) -> tuple[str, str, str | None] | None:
    """``(kind, target, subcommand)`` of one shell line, or None when it runs no project command."""
    line = PREFIX.sub("", line.strip())
    m = PYTHON.match(line)
    if m:
        if m.group("module"):
            module = m.group("module")
            if module == "pytest":
                return None
            sub = m.group("sub") if m.group("sub") in SUBCOMMANDS.get(module, ()) else None
            return "module", module, sub
        return "script", m.group("script"), None
    m = SCRIPT.match(line)  # `torchrun ... train_hacs.py`
    return ("script", m.group("script"), None) if m else None


def doc_commands() -> list[tuple[str, str, str | None]]:
    found: dict[tuple, None] = {}
    for path in DOCS:
        for line in bash_lines(path.read_text(encoding="utf-8")):
            command = parse_command(line)
            if command:
                found[command] = None
    return list(found)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set(ANCHOR.findall(text))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text(encoding="utf-8")))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{path.name}: {target} (no file {dest.relative_to(ROOT) if ROOT in dest.parents else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{path.name}: {target} (no heading or anchor '#{anchor}' in {dest.name})")
    return broken


def test_command_lines_are_recognised():
    assert parse_command("python -m data.convert videos SRC DST --fps 2") == ("module", "data.convert", "videos")
    assert parse_command("python -m data.prepare ucf101 --videos V") == ("module", "data.prepare", None)
    assert parse_command("srun python train_kinetics.py --gates True") == ("script", "train_kinetics.py", None)
    assert parse_command("torchrun --nproc-per-node 4 --rdzv-endpoint H:1 evaluate.py --clips 10") == (
        "script", "evaluate.py", None)
    assert parse_command("OMP_NUM_THREADS=1 python -m tools.export --format onnx") == ("module", "tools.export", None)
    assert parse_command("python -m pytest -q") is None
    assert parse_command("pip install -r requirements.txt") is None


def test_slugs_follow_github():
    assert slug("Multi-GPU, multi-node, CPU processes, precision") == "multi-gpu-multi-node-cpu-processes-precision"
    assert slug("Long-short cycles (multigrid)") == "long-short-cycles-multigrid"
    assert slug("`--decode` on the device") == "--decode-on-the-device"
    assert slug("**The SR block's `sr_init`**") == "the-sr-blocks-sr_init"


def test_a_broken_link_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Top\n\n## Part one\n\n1. <a id=\"7\"></a>seven\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#part-one) [ok](a.md#7) [ok](#top-b) [bad](a.md#part-two) [bad](c.md)\n"
                    "# Top b\n`[not a link](nowhere.md)`\n", encoding="utf-8")
    assert broken_links(page) == ["b.md: a.md#part-two (no heading or anchor '#part-two' in a.md)",
                                  "b.md: c.md (no file c.md)"]


def test_the_docs_show_the_commands_ci_runs():
    readme = bash_lines((ROOT / "README.md").read_text(encoding="utf-8"))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert any(line.split("#")[0].strip() == "python -m pytest -q" for line in readme)
    assert "python -m pytest -q\n" in ci  # the README's test command is the one CI runs
    assert any(line.split("#")[0].strip() == 'python -m pytest -q -m "not slow"' for line in readme)
    shown = doc_commands()
    assert ("script", "train_synthetic.py", None) in shown and ("module", "data.prepare", None) in shown
    assert len(shown) >= 12


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def code_references() -> list[tuple[str, str]]:
    """``(file, 'docs/<page>.md[#anchor]')`` cited in the project's Python files, ``#29, #30`` as two."""
    refs = []
    for path in sorted(ROOT.rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        for m in re.finditer(r"docs/(\w+\.md)(#[\w-]+(?:, #\d+)*)?", path.read_text(encoding="utf-8")):
            anchors_cited = re.findall(r"#([\w-]+)", m.group(2) or "") or [""]
            refs += [(str(path.relative_to(ROOT)), f"docs/{m.group(1)}#{a}".rstrip("#")) for a in anchors_cited]
    return refs


def test_code_cites_existing_docs():
    refs = code_references()
    assert sum(ref.startswith("docs/differences.md#") for _, ref in refs) >= 20
    missing = []
    for source, ref in refs:
        page, _, anchor = ref.partition("#")
        if not (ROOT / page).is_file() or (anchor and anchor not in anchors(ROOT / page)):
            missing.append(f"{source}: {ref}")
    assert missing == []


@pytest.mark.parametrize("kind,target,sub", doc_commands(), ids=lambda v: str(v))
def test_doc_command_answers_help(kind, target, sub, monkeypatch, capsys):
    argv = [sub, "--help"] if sub else ["--help"]
    monkeypatch.chdir(ROOT)
    if kind == "script":
        path = ROOT / target
        assert path.is_file(), f"the docs show {target}, which does not exist"
        monkeypatch.setattr(sys, "argv", [str(path), *argv])
        run = lambda: runpy.run_path(str(path), run_name="__main__")
    else:
        monkeypatch.setattr(sys, "argv", [target, *argv])
        run = lambda: runpy.run_module(target, run_name="__main__", alter_sys=True)
    with pytest.raises(SystemExit) as info:
        run()
    assert info.value.code in (0, None), capsys.readouterr().err
    assert "usage:" in capsys.readouterr().out
