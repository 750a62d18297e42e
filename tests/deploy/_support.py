"""Shared pieces of the deploy tests: where things are, the external tools, rendered overlays.

The tests run real tools (``kubectl kustomize``, ``hadolint``, ``docker-compose config``) and
install nothing. Locally a missing tool skips its tests; under CI (``CI`` set) it fails them, so
a CI image without the tool cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_DIR = DEPLOY / "compose"
IMAGES = DEPLOY / "images"

# What CI renders: every overlay, plus the base on its own.
KUSTOMIZATIONS = ("base", "overlays/gpu", "overlays/cpu-dev")

Doc = dict[str, Any]


def find_tool(name: str) -> str | None:
    """A tool on PATH or next to this Python (pip-installed binaries land in the venv's bin)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_tool(name: str, how: str) -> str:
    path = find_tool(name)
    if path is None:
        message = f"{name} not found ({how})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(
    cmd: list[str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


_RENDERED: dict[str, list[Doc]] = {}


def render(kustomization: str) -> list[Doc]:
    """``kubectl kustomize`` output as a list of objects (cached for the session)."""
    if kustomization not in _RENDERED:
        kubectl = require_tool("kubectl", "install kubectl >= 1.27 (kustomize v5 built in)")
        result = run([kubectl, "kustomize", str(K8S / kustomization)])
        assert result.returncode == 0, f"kubectl kustomize {kustomization}:\n{result.stderr}"
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        assert docs, f"{kustomization} rendered nothing"
        _RENDERED[kustomization] = docs
    return _RENDERED[kustomization]


def pod_spec(doc: Doc) -> Doc | None:
    """The pod template's spec of a workload, None for other kinds."""
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "Pod":
        return doc["spec"]
    return None


def containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def env_value(container: Doc, name: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == name:
            return item.get("value")
    return None
