"""The docs cite only what a reader of this repository has: every file path in README.md, docs/
and the packages' docstrings and comments exists here, and nothing points at internal tickets.

A path counts when it starts with ``/``, ``~/``, ``./`` or ``../``, or when its first part is a
top-level entry of the repository (``gateway/_proxy.py``, ``docs/engine.md``); so does a bare
upper-case Markdown name (``NOTES.md``). Absolute paths are refused only on developer-machine
roots (``/work``, ``/root``, ``/home``...): ``/v1/models`` or ``/proc/PID/stat`` are not files of
ours. A relative path may be relative to the repository root, to the citing file or to any folder
of the repository (a suite's ``../datasets/x.jsonl``, ``tests/alerts_test.yaml`` "from
deploy/monitoring"), but never lead out of it. Placeholders (``<name>``, ``{config}``, ``*``,
``NAME``) match any one path part; paths under what the build writes (``bench/out/``,
``.venv/``) are not checked.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "common", "gateway", "engine", "observability", "monitor", "prompts", "retrieval", "evals",
    "llmops", "bench",
]  # fmt: skip
# Written by the build or a run, never committed.
GENERATED = ("bench/out/", ".venv/", ".mypy_cache/", ".pytest_cache/", "llmops.egg-info/")
# Roots of someone's machine: a path there is not in a reader's checkout.
MACHINE_ROOTS = ("/work/", "/root/", "/home/", "/Users/", "/mnt/", "/workspace/", "/shared/")

PATH = re.compile(
    r"(?<![\w.:/@$-])"  # not inside a URL, a longer word or $VAR/...
    r"((?:\.\.?/|~/|/)?[\w.*<>{}-]+(?:/[\w.*<>{}-]+)*/?)"
)
TICKET = re.compile(
    r"\b(?:issues?|tickets?|bugs?|tasks?)\s*#?\d+\b|\btickets?\b|(?<![\w/&])#\d+\b", re.I
)
BARE_DOC = re.compile(r"(?<![\w./-])([A-Z][A-Z0-9_-]*\.md)\b")
PLACEHOLDER = re.compile(r"<[^>/]*>|\{[^}/]*\}|\*+|\b[A-Z][A-Z_]{2,}\b")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


_DOCSTRINGS = """
import ast, json, sys
out = []
for node in ast.walk(ast.parse(sys.stdin.read())):
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                out.append((body[0].lineno, body[0].value.value))
print(json.dumps(out))
"""


def _docstrings(source: str) -> list[tuple[int, str]]:
    """(line, text) of each module, class and function docstring.

    Read in a child process: CPython 3.11.7's ``ast.parse`` can fail with "AST constructor
    recursion depth mismatch" in a process where an earlier test hit a RecursionError (the
    deep-body fuzz tests do), which would make this test depend on the order tests run in.
    """
    out = subprocess.run(
        [sys.executable, "-c", _DOCSTRINGS], input=source, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return [(int(line), str(text)) for line, text in json.loads(out.stdout)]


def prose_of_python(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every docstring and comment."""
    source = path.read_text(encoding="utf-8")
    yield from _docstrings(source)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def prose_of_markdown(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text(encoding="utf-8").splitlines(), 1)


def prose() -> Iterator[tuple[Path, int, str]]:
    for md in markdown_files():
        for line, text in prose_of_markdown(md):
            yield md, line, text
    for py in python_files():
        for line, text in prose_of_python(py):
            yield py, line, text


_SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


@functools.cache
def _top_level() -> frozenset[str]:
    return frozenset(p.name for p in ROOT.iterdir() if p.name not in _SKIP_DIRS)


@functools.cache
def _folders() -> tuple[Path, ...]:
    out = [ROOT]
    for d, dirs, _ in os.walk(ROOT):
        dirs[:] = [x for x in dirs if x not in _SKIP_DIRS and not x.endswith(".egg-info")]
        out.extend(Path(d) / x for x in dirs)
    return tuple(out)


@functools.cache
def _file_names() -> frozenset[str]:
    return frozenset(f for d in _folders() for f in os.listdir(d))


def _exists(candidate: str, base: Path) -> bool:
    """Whether ``candidate``, relative to the repository root, to ``base`` or to any folder of
    the repository, names something inside the checkout; placeholders match any path part."""
    pattern = PLACEHOLDER.sub("*", candidate.rstrip("/"))
    for folder in (ROOT, base, *_folders()):
        matches = folder.glob(pattern) if "*" in pattern else [folder / pattern]
        if any(m.exists() and m.resolve().is_relative_to(ROOT) for m in matches):
            return True
    return False


def bad_paths(text: str, where: Path) -> list[str]:
    """The file paths in ``text`` that a reader of this repository does not have."""
    out = []
    top = _top_level()
    base = where.parent
    for m in PATH.finditer(text):
        cand = m.group(1).rstrip(".,:;")
        if "/" not in cand or cand in ("/", "./", "../") or cand.startswith("//"):
            continue
        if cand.startswith(MACHINE_ROOTS):
            out.append(cand)
            continue
        if cand.startswith(("/", "~/")):
            continue  # URL paths, /proc, ~/.cache/llmops: not files of the checkout
        if cand.startswith("../"):
            if not (base / cand).resolve().is_relative_to(ROOT) or not _exists(cand, base):
                out.append(cand)
            continue
        rel = cand.removeprefix("./")
        first = rel.split("/", 1)[0]
        if first not in top or rel.startswith(GENERATED):
            continue
        if not _exists(rel, base):
            out.append(cand)
    out.extend(name for name in BARE_DOC.findall(text) if name not in _file_names())
    return out


def test_docs_cite_only_files_that_exist() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {bad}"
        for path, line, text in prose()
        for bad in bad_paths(text, path)
    ]
    assert not problems, "paths that are not in this repository:\n" + "\n".join(problems)


def test_docs_cite_no_tickets() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r} in {text.strip()[:100]!r}"
        for path, line, text in prose()
        for m in TICKET.finditer(text)
    ]
    assert not problems, "internal ticket references:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("see `../shared/NOTES.md`", ["../shared/NOTES.md"]),
        ("the set in NOTES.md; see README.md", ["NOTES.md"]),
        ("see /work/shared/NOTES.md:", ["/work/shared/NOTES.md"]),
        ("notes in /root/notes.md", ["/root/notes.md"]),
        ("`docs/nope.md` and gateway/_nope.py", ["docs/nope.md", "gateway/_nope.py"]),
        ("`docs/engine.md`, `gateway/_proxy.py`, `evals/suites/*.yaml`", []),
        ("`bench/out/<name>.json` (git-ignored)", []),
        ("POST /v1/chat/completions, /proc/PID/stat, ~/.cache/llmops", []),
        ("https://example.com/docs/x.md and user/repo", []),
    ],
)
def test_path_scanner(text: str, bad: list[str]) -> None:
    assert bad_paths(text, ROOT / "README.md") == bad


def test_relative_paths_may_start_from_any_folder_but_not_leave_the_repository() -> None:
    doc = ROOT / "docs" / "evals.md"
    assert bad_paths("dataset: ../datasets/rag-answer.jsonl  # relative to the suite", doc) == []
    assert bad_paths("`../datasets/nope.jsonl`, ../../x.md", doc) == [
        "../datasets/nope.jsonl", "../../x.md",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "hits"),
    [("issue 2's targets", 1), ("see ticket", 1), ("Issue #12", 1), ("fixes #34", 1),
     ("the issue is the 2 cores", 0), ("97 tasks, each", 0), ("&#34;", 0)],
)  # fmt: skip
def test_ticket_scanner(text: str, hits: int) -> None:
    assert len(TICKET.findall(text)) == hits
