"""The project's import rules, read from the source: layers point down, no cycles, no ``sys.path`` edits.

Layers, lowest first: ``network`` <- ``data`` <- ``train`` <- ``evaluation`` <- ``tools``, ``benchmarks`` and the
top-level scripts. Inside ``data``: ``store`` <- ``catalog`` <- ``pipeline`` <- ``prep`` <- the ``python -m data.X``
entry points. Inside ``train``: its base (``train.config``, ``train.distributed``) <- ``plots`` <- ``results`` <-
``monitor`` <- ``engine``. A module may import its own layer or lower ones; every import counts, also one
inside a function, since a hidden import is still a dependency.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("network", "data", "train", "evaluation", "tools", "benchmarks")
SCRIPTS = sorted(p.name for p in ROOT.glob("*.py"))  # keyed by file name: train.py is not the package train
TOP_RANK = {"network": 0, "data": 1, "train": 2, "evaluation": 3, "tools": 4, "benchmarks": 4,
            **{script: 5 for script in SCRIPTS}}
SUB_RANK = {
    "data": {"store": 0, "catalog": 1, "pipeline": 2, "prep": 3, None: 4},
    "train": {None: 0, "plots": 1, "results": 2, "monitor": 3, "engine": 4},
}
MAX_MODULES_PER_FOLDER = 12


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    mods = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    mods.update({name: ROOT / name for name in SCRIPTS})
    return mods


MODULES = project_modules()


def imports_of(path: Path) -> set[str]:
    """First-party modules ``path`` imports (``from pkg import mod`` resolves to ``pkg.mod`` when that is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and (name not in MODULES or name in SCRIPTS):
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in PACKAGES:
                found.add(name)
    return found


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def rank(module: str) -> tuple[int, int]:
    if module in SCRIPTS:
        return TOP_RANK[module], 0
    top, _, rest = module.partition(".")
    sub = SUB_RANK.get(top)
    if sub is None:
        return TOP_RANK[top], 0
    first = rest.partition(".")[0]
    key = first if first in sub else None
    return TOP_RANK[top], sub[key]


def test_the_graph_sees_the_known_edges():
    assert "data.store.atomic" in GRAPH["train.results.checkpoint"]
    assert "train.engine.trainer" in GRAPH["train.engine.run"]
    assert "network.registry" in GRAPH["network"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    own_top = module if module in SCRIPTS else module.split(".")[0]
    upward = sorted(dep for dep in GRAPH[module]
                    if rank(dep)[0] > rank(module)[0]
                    or dep.split(".")[0] == own_top and rank(dep)[1] > rank(module)[1])
    assert not upward, f"{module} imports a higher layer: {upward}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_no_module_edits_sys_path():
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                offenders.append(name)
                break
    assert not offenders, f"modules that touch sys.path: {offenders}"


def test_no_folder_holds_more_than_a_dozen_modules():
    per_folder = defaultdict(list)
    for path in MODULES.values():
        if path.name != "__init__.py" and path.parent != ROOT:
            per_folder[path.parent.relative_to(ROOT)].append(path.stem)
    crowded = {str(folder): len(mods) for folder, mods in per_folder.items() if len(mods) > MAX_MODULES_PER_FOLDER}
    assert not crowded, f"folders over {MAX_MODULES_PER_FOLDER} modules: {crowded}"


def test_a_planted_upward_import_and_cycle_are_caught(monkeypatch):
    monkeypatch.setitem(GRAPH, "network.registry", GRAPH["network.registry"] | {"train.engine.run"})
    with pytest.raises(AssertionError, match="imports a higher layer"):
        test_imports_point_down("network.registry")
    monkeypatch.setitem(GRAPH, "network.conv", GRAPH["network.conv"] | {"network.srtg"})
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycles()
