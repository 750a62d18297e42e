"""Shared pieces of the deploy tests: where things are, the external tools, rendered overlays,
the Dockerfile parser and the inventory of every image ``deploy/`` names.

The tests run real tools (``kubectl kustomize``, ``hadolint``, ``docker-compose config``,
``actionlint``) and install nothing. Every skip for something missing goes through
``missing``: locally it skips and the reason says what is missing and how to get it; under CI
(``CI`` set to anything but ``""``/``0``/``false``/``no``/``off``, as GitHub's ``CI=true``) it
fails, so a CI machine without the tool cannot pass silently. No test here calls
``pytest.skip``/``pytest.importorskip`` itself (``test_support.py`` checks that).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_DIR = DEPLOY / "compose"
IMAGES = DEPLOY / "images"
# CustomResourceDefinitions of the custom kinds the manifests use, vendored from their projects.
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# What CI renders: every overlay, plus the base on its own.
KUSTOMIZATIONS = ("base", "overlays/gpu", "overlays/cpu-dev")

Doc = dict[str, Any]


def find_tool(name: str) -> str | None:
    """A tool on PATH or next to this Python (pip-installed binaries land in the venv's bin)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def in_ci() -> bool:
    """``CI`` is set (GitHub Actions sets ``CI=true``); ``0``/``false``/``no``/``off`` are not."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def missing(what: str, how: str) -> NoReturn:
    """Skip locally, fail under CI; either way the reason names what is missing and the fix."""
    message = f"{what} is missing ({how})"
    if in_ci():
        pytest.fail(f"{message}; CI={os.environ.get('CI')} does not allow skipping it")
    pytest.skip(message)


def require_tool(name: str, how: str) -> str:
    path = find_tool(name)
    if path is None:
        missing(f"the {name} executable", how)
    return path


def require_module(name: str, how: str) -> ModuleType:
    """``pytest.importorskip`` that fails under CI."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"the Python module {name} ({exc})", how)


def require_file(path: Path, how: str) -> Path:
    if not path.is_file():
        missing(f"the file {path}", how)
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


@functools.cache
def crd_schemas() -> dict[tuple[str, str], Doc]:
    """(apiVersion, kind) -> openAPIV3Schema of every version of the CRDs in ``schemas/``."""
    found = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                found[key] = _strict(version["schema"]["openAPIV3Schema"])
    return found


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the properties, as the API
    server does under kubectl's default strict field validation (it would otherwise prune a
    misspelt field silently)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def custom_resource_errors(doc: Doc) -> list[str] | None:
    """Errors of a custom resource against its vendored CRD's schema (``jsonschema``, strict
    as above; CEL rules are not evaluated); None when no CRD in ``schemas/`` defines its kind."""
    schema = crd_schemas().get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if schema is None:
        return None
    jsonschema = require_module("jsonschema", "pip install -e '.[test]'")
    validator = jsonschema.Draft4Validator(schema)
    name = f"{doc['kind']}/{doc.get('metadata', {}).get('name')}"
    return [
        f"{name} at {'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]


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


# --- Dockerfiles --------------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages of a Dockerfile, with global ARG defaults substituted into FROM."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [ln.strip() for ln in text.splitlines()]
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            arg, _, default = args.partition("=")
            global_args[arg.strip()] = default.strip()
        elif keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=alias))
        else:
            assert stages, f"{path}: {keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def dockerfile_args(path: Path) -> dict[str, str]:
    """Every ``ARG NAME=default`` of a Dockerfile (global and per stage)."""
    found = re.findall(r"^\s*ARG\s+(\w+)=(\S+)", path.read_text(), re.M)
    return dict(found)


# --- Images -------------------------------------------------------------------------------------

# The images this project builds itself (deploy/images/*.Dockerfile); their tags are our release.
OWN_IMAGES = ("llmops-gateway", "llmops-engine", "ghcr.io/example-org/llmops-gateway")


@dataclass(frozen=True)
class Image:
    """One image reference and where deploy/ names it."""

    ref: str
    where: str

    @property
    def name(self) -> str:
        return split_ref(self.ref)[0]

    @property
    def tag(self) -> str | None:
        return split_ref(self.ref)[1]

    @property
    def digest(self) -> str | None:
        return split_ref(self.ref)[2]

    @property
    def short(self) -> str:
        """Without Docker Hub's implicit ``docker.io/`` (and ``library/``) prefix."""
        return normalise_ref(self.ref)


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``registry:port/name:tag@sha256:…`` as (name, tag, digest); a port is not a tag."""
    name_tag, at, digest = ref.partition("@")
    head, slash, last = name_tag.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
        return head + slash + last, tag, (digest if at else None)
    return name_tag, None, (digest if at else None)


def normalise_ref(ref: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


_VERSION_TAG = re.compile(r"^(v?\d+(\.\d+)+|RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z)([-.+_][\w.-]+)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_version_tag(tag: str | None) -> bool:
    """An explicit release: ``1.2.3``, ``v0.32.0``, ``25.12``, ``v1.20.0-unprivileged``,
    ``3.11.16-slim-bookworm``, MinIO's ``RELEASE.<date>``; never ``latest``/``main``/none, nor a
    bare major (``redis:7`` follows every 7.x release)."""
    return tag is not None and bool(_VERSION_TAG.match(tag)) and "latest" not in tag


def is_pinned(ref: str) -> bool:
    _, tag, digest = split_ref(ref)
    return is_version_tag(tag) or bool(digest and _DIGEST.match(digest))


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def compose_images() -> Iterator[Image]:
    for path in sorted(COMPOSE_DIR.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text()) or {}
        for name, service in (data.get("services") or {}).items():
            if "image" in service:
                yield Image(service["image"], f"{_relative(path)} services.{name}.image")
            else:
                yield Image("", f"{_relative(path)} services.{name} (no image)")


def kustomize_images() -> Iterator[Image]:
    """What each ``images:`` entry of a kustomization turns its name into."""
    for path in sorted(K8S.rglob("kustomization.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for entry in data.get("images") or []:
            ref = entry.get("newName", entry["name"])
            if "newTag" in entry:
                ref += f":{entry['newTag']}"
            if "digest" in entry:
                ref += f"@{entry['digest']}"
            yield Image(ref, f"{_relative(path)} images[{entry['name']}]")


def dockerfile_images() -> Iterator[Image]:
    for path in sorted(IMAGES.glob("*.Dockerfile")):
        stages = parse_dockerfile(path)
        aliases = {s.name for s in stages if s.name}
        for stage in stages:
            if stage.image not in aliases:
                yield Image(stage.image, f"{_relative(path)} FROM")


def deployed_images() -> list[Image]:
    """Every image deploy/ runs or builds on: compose services, kustomize ``images:``,
    Dockerfile base images. (Manifests name placeholders the kustomizations replace; the
    rendered output is checked separately.)"""
    return [*compose_images(), *kustomize_images(), *dockerfile_images()]


def third_party_images() -> list[Image]:
    own = tuple(f"{n}:" for n in OWN_IMAGES)
    return [i for i in deployed_images() if not i.ref.startswith(own)]


def text_files(root: Path = DEPLOY) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix not in (".json",) and ".git" not in path.parts:
            yield path


def mentions(pattern: str, root: Path = DEPLOY) -> list[Image]:
    """Every ``<image>:<tag>`` matching ``pattern`` (a regex for the name) in deploy/'s text:
    comments, README examples and ``--build-arg`` hints included, so none goes stale."""
    found = []
    rx = re.compile(rf"((?:[\w.-]+(?::\d+)?/)*(?:{pattern})):([\w][\w.-]*)")
    for path in text_files(root):
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in rx.finditer(line):
                found.append(Image(f"{m.group(1)}:{m.group(2)}", f"{_relative(path)}:{n}"))
    return found


def version_tuple(text: str) -> tuple[int, ...]:
    m = re.match(r"^v?(\d+(?:\.\d+)*)", text)
    assert m, f"no version in {text!r}"
    return tuple(int(p) for p in m.group(1).split("."))
