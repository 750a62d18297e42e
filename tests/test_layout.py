"""The house rules of the layout: who may import whom, and one public face per package.

Read from the source with ``ast`` (nothing is imported), so a new import that breaks the
one-way picture in docs/architecture.md fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "common",
    "gateway",
    "engine",
    "observability",
    "monitor",
    "prompts",
    "retrieval",
    "evals",
    "rollout",
    "llmops",
)
# package -> the packages of ours it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "prompts": {"common"},
    "retrieval": {"common"},
    "engine": {"common"},
    "observability": {"common"},
    "evals": {"common", "prompts", "retrieval"},
    "monitor": {"common", "observability", "evals"},
    "rollout": {"common", "evals"},
    "gateway": {"common", "prompts", "retrieval", "observability", "engine"},
    "llmops": set(PACKAGES),
}
# packages others may reach only through their public face (`import x`, never `x._mod`)
PUBLIC_ONLY = {
    "common", "observability", "engine", "prompts", "retrieval", "evals", "monitor", "rollout",
}  # fmt: skip


def _modules(pkg: str) -> list[Path]:
    return sorted(p for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT).with_suffix("")
    here = list(rel.parts[:-1])  # a module and a package's __init__ alike
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
    return out


def _edges() -> list[tuple[str, str, str, int]]:
    """(from package, imported module, file, line) for every import of one of our packages."""
    found = []
    for pkg in PACKAGES:
        for path in _modules(pkg):
            for mod, line in _imports(path):
                top = mod.split(".")[0]
                if top in PACKAGES and top != pkg:
                    found.append((pkg, mod, str(path.relative_to(ROOT)), line))
    return found


def test_imports_follow_the_picture() -> None:
    bad = [
        f"{f}:{line} ({pkg} imports {mod})"
        for pkg, mod, f, line in _edges()
        if mod.split(".")[0] not in ALLOWED[pkg]
    ]
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_other_packages_use_public_faces() -> None:
    bad = [
        f"{f}:{line} imports {mod}"
        for pkg, mod, f, line in _edges()
        if mod.split(".")[0] in PUBLIC_ONLY and pkg != "llmops" and "._" in f".{mod}"
    ]
    # `x.cli` is each package's Typer app: only the `llmops` entry point composes them.
    assert not bad, "reach through the package's __init__ instead:\n" + "\n".join(bad)


def test_no_cycles_between_packages() -> None:
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for pkg, mod, _f, _line in _edges():
        graph[pkg].add(mod.split(".")[0])

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = [p for p in PACKAGES if p in reach(p)]
    assert not cycles, f"packages on an import cycle: {cycles}"


@pytest.mark.parametrize("pkg", PACKAGES)
def test_public_face(pkg: str) -> None:
    """Private modules behind an ``__init__`` with ``__all__``; no lazy ``__getattr__``."""
    for init in (ROOT / pkg).rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        names = {
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "__getattr__" not in funcs, f"{init}: lazy exports hide import cycles"
        if pkg != "llmops":
            assert "__all__" in names, f"{init} has no __all__"
    public = [
        p.relative_to(ROOT)
        for p in _modules(pkg)
        if not p.name.startswith("_") and p.name != "cli.py"
    ]
    assert not public, f"modules outside the public face must be private (_name.py): {public}"


def test_the_shared_core_imports_nothing_of_ours() -> None:
    assert not [e for e in _edges() if e[0] == "common"]
