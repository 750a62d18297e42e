"""The deploy tests' own rules: a missing tool skips locally and fails under CI, and no test
skips by itself (every skip goes through ``_support.missing``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.deploy import _support
from tests.deploy._support import (
    in_ci,
    is_pinned,
    is_version_tag,
    missing,
    require_file,
    require_module,
    require_tool,
    split_ref,
)

HERE = Path(__file__).parent
NO_SUCH_TOOL = "llmops-no-such-tool"


_SKIPS = ("skip", "skipif", "importorskip")


def _skip_calls(path: Path) -> list[str]:
    """``pytest.skip(...)``/``pytest.importorskip(...)`` calls and ``skip``/``skipif`` marks."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Call):
            targets.append(node.func)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            targets.extend(node.decorator_list)
        for t in targets:
            if isinstance(t, ast.Attribute) and t.attr in _SKIPS:
                found.append(f"{path.name}:{t.lineno}: {ast.unparse(t)}")
    return found


def test_no_deploy_test_skips_by_itself() -> None:
    """A direct ``pytest.skip``/``importorskip`` would pass CI silently; use ``missing``."""
    offenders = [
        call
        for path in sorted(HERE.glob("*.py"))
        if path.name != "_support.py"
        for call in _skip_calls(path)
    ]
    assert not offenders, "skip through tests.deploy._support.missing:\n" + "\n".join(offenders)


def test_the_scan_sees_skips(tmp_path: Path) -> None:
    """Guard for the test above."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pytest\n"
        "m = pytest.importorskip('x')\n"
        "@pytest.mark.skipif(True, reason='r')\n"
        "def test_a():\n"
        "    pytest.skip('why')\n"
    )
    assert len(_skip_calls(probe)) == 3


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_missing_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=r"kubectl is missing \(install kubectl\)"):
        missing("kubectl", "install kubectl")


@pytest.mark.parametrize("value", [None, "", "false", "0", "no", "off"])
def test_missing_skips_locally_and_says_what(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match=r"promtool is missing \(apt-get install"):
        missing("promtool", "apt-get install prometheus")


@pytest.mark.parametrize("ci", [True, False])
def test_require_helpers_name_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: bool
) -> None:
    monkeypatch.setenv("CI", "true" if ci else "")
    monkeypatch.setenv("PATH", str(tmp_path))
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match=rf"the {NO_SUCH_TOOL} executable is missing \(pip"):
        require_tool(NO_SUCH_TOOL, "pip install it")
    with pytest.raises(expected, match=r"the Python module llmops_no_such_module .* is missing"):
        require_module("llmops_no_such_module", "pip install it")
    with pytest.raises(expected, match=r"the file .*nothing\.json is missing \(apt-get"):
        require_file(tmp_path / "nothing.json", "apt-get install it")


def test_require_helpers_return_what_is_there(tmp_path: Path) -> None:
    tool = tmp_path / NO_SUCH_TOOL
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", str(tmp_path))
        assert require_tool(NO_SUCH_TOOL, "") == str(tool)
    assert require_module("tests.deploy._support", "") is _support
    assert require_file(tool, "") == tool


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [
        ("redis:7.4.11", True),
        ("qdrant/qdrant:v1.20.0-unprivileged", True),
        ("python:3.11.16-slim-bookworm", True),
        ("clickhouse/clickhouse-server:25.12", True),
        ("quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", True),
        ("localhost:5000/llmops-gateway:0.1.0", True),
        ("python@sha256:" + "0" * 64, True),
        ("redis", False),
        ("redis:7", False),
        ("postgres:17-alpine", False),
        ("redis:latest", False),
        ("qdrant/qdrant:latest-unprivileged", False),
        ("localhost:5000/llmops-gateway", False),
        ("langfuse/langfuse:main", False),
        ("vllm/vllm-openai:nightly", False),
        ("python:slim", False),
        ("python@sha256:abc", False),
    ],
)
def test_is_pinned(ref: str, pinned: bool) -> None:
    assert is_pinned(ref) is pinned


def test_split_ref() -> None:
    assert split_ref("localhost:5000/a/b:1.2@sha256:x") == ("localhost:5000/a/b", "1.2", "sha256:x")
    assert split_ref("localhost:5000/a") == ("localhost:5000/a", None, None)
    assert split_ref("redis:7.4.11") == ("redis", "7.4.11", None)
    assert not is_version_tag(None) and is_version_tag("v4.7.1")
