"""The skip policy of tests/conftest.py: with CI set a missing component fails the test; only
hardware skips (``needs a GPU``) pass. Runs a small suite in a separate pytest process, under the
real conftest, once as CI and once as a developer."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import in_ci, skip_allowed, unallowed_skips

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
import shutil

import pytest

needs_redis = pytest.mark.skipif(True, reason="redis-server missing: bash scripts/system_deps.sh")


@pytest.fixture()
def engine():
    pytest.skip("engine venv or model not prepared: run `python -m engine.cli prepare`")


@needs_redis
def test_redis():
    pass


def test_promtool():
    pytest.skip("promtool not installed (apt-get install prometheus)")


def test_engine(engine):
    pass


def test_optional_import():
    pytest.importorskip("no_such_module_for_llmops_tests")


def test_gpu():
    pytest.skip("needs a GPU: the CUDA engine")


@pytest.mark.xfail(reason="a known bug, not a missing component")
def test_known_bug():
    assert False


def test_plain():
    pass
"""

MODULE_SKIP = """
import pytest

pytest.importorskip("no_such_module_for_llmops_tests")


def test_never_collected():
    pass
"""


def run_suite(tmp_path: Path, ci: str | None) -> dict[str, str]:
    """Outcome per test name, from the junit report: passed, failure, error, skipped."""
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the policy needs pytest alone; starts faster
    if ci is not None:
        env["CI"] = ci
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "--continue-on-collection-errors", f"--junitxml={junit}", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        name = case.get("name") or ""
        outcomes[name or str(case.get("classname"))] = kinds[0] if kinds else "passed"
    outcomes["exit"] = str(proc.returncode)
    outcomes["junit"] = str(junit)
    return outcomes


def test_ci_turns_skips_for_missing_components_into_failures(tmp_path: Path) -> None:
    out = run_suite(tmp_path, "true")
    failed = {"failure", "error"}  # a skip in set-up (markers, fixtures) reports as an error
    assert out["test_redis"] in failed  # skipif marker
    assert out["test_promtool"] in failed  # pytest.skip in the test
    assert out["test_engine"] in failed  # pytest.skip in a fixture
    assert out["test_optional_import"] in failed  # importorskip
    assert out["test_module_skip"] in failed  # module-level importorskip
    assert out["test_gpu"] == "skipped"  # hardware: allowed
    assert out["test_known_bug"] == "skipped"  # xfail is not a skip
    assert out["test_plain"] == "passed"
    assert out["exit"] == "1"
    assert unallowed_skips(out["junit"]) == []


def test_locally_missing_components_skip_and_ci_run_would_refuse_them(tmp_path: Path) -> None:
    out = run_suite(tmp_path, None)
    for name in ("test_redis", "test_promtool", "test_engine", "test_optional_import"):
        assert out[name] == "skipped", out
    assert out["exit"] == "0"
    refused = unallowed_skips(out["junit"])
    names = sorted(line.split(": ", 1)[0].rsplit("::", 1)[-1] for line in refused)
    assert names == [
        "test_engine", "test_module_skip", "test_optional_import", "test_promtool", "test_redis",
    ], refused  # fmt: skip
    assert not any("needs a GPU" in line for line in refused)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False)],
)
def test_what_counts_as_ci(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_only_hardware_reasons_are_allowed() -> None:
    assert skip_allowed("needs a GPU: CUDA engine") and skip_allowed("Skipped: needs a GPU")
    assert not skip_allowed("redis-server missing") and not skip_allowed("GPU needed")
