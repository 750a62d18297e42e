"""A temporary git repo with a prompt, a suite and a dataset; the real gateway in front of a fake
vLLM whose answers depend on the rendered prompt (tests/evals/fakes.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import GatewayConfig, hash_key
from tests.evals.fakes import CAPITALS, GOOD_INSTRUCTION, TableUpstream
from tests.fakes.servers import GatewayServer

API_KEY = "sk-evals-test"
KEY_ENV = "LLMOPS_EVALS_TEST_KEY"


def prompt_yaml(instruction: str) -> str:
    return yaml.safe_dump(
        {
            "name": "capitals",
            "description": "capital city of a country",
            "model": "chat",
            "params": {"temperature": 0, "max_tokens": 20},
            "variables": {"country": {"type": "string"}},
            "messages": [
                {"role": "system", "content": instruction},
                {"role": "user", "content": "What is the capital of {{ country }}?"},
            ],
        },
        sort_keys=False,
    )


def suite_dict(**over: Any) -> dict[str, Any]:
    suite: dict[str, Any] = {
        "name": "capitals",
        "target": {"prompt": "capitals", "render": "local", "api_key_env": KEY_ENV},
        "dataset": "../datasets/capitals.jsonl",
        "concurrency": 4,
        "seed": 7,
        "metrics": [
            {"type": "contains", "threshold": 0.8, "max_regression": 0.05},
            {"type": "exact_match", "ignore_case": True, "threshold": 0.5, "max_regression": 0.1},
            {"type": "length", "max": 40},
            {"type": "latency_ms"},
        ],
    }
    suite.update(over)
    return suite


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


def commit_files(repo: Path, parent: str, files: dict[Path, bytes], tag: str) -> str:
    """A commit on top of ``parent`` with ``files`` (absolute paths in the repo -> content),
    made with git's plumbing so neither the working tree nor the index moves; tagged ``tag``."""
    env = {**os.environ, "GIT_INDEX_FILE": str(repo / ".git" / f"index-{tag}")}
    git(repo, "read-tree", parent, env=env)
    for f, data in files.items():
        blob = (
            subprocess.run(
                ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
                input=data,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        rel = f.resolve().relative_to(repo.resolve()).as_posix()
        git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
    tree = git(repo, "write-tree", env=env)
    commit = git(repo, "commit-tree", tree, "-p", parent, "-m", tag)
    git(repo, "tag", "-f", tag, commit)
    return tag


def suite_ref(repo: Path, ref: str, suite: Path) -> str:
    """``ref`` plus the suite file and its dataset as they are in the working tree, tagged
    ``ref+SUITE``: a compare reads the gate from its base ref, so a suite written by a test must
    exist there (else it is a new suite, gated on thresholds alone)."""
    dataset = (suite.parent / yaml.safe_load(suite.read_text())["dataset"]).resolve()
    files = {f: f.read_bytes() for f in (suite, dataset) if f.is_file()}
    return commit_files(repo, ref, files, f"{ref}+{suite.stem}")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tags: ``good`` (the prompt), ``damaged`` (instruction lost), ``unchanged`` (prompt as in
    ``good``, another file changed)."""
    r = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", "-b", "main", str(r)], check=True)
    git(r, "config", "user.email", "t@example.com")
    git(r, "config", "user.name", "t")
    (r / "prompts").mkdir()
    (r / "evals" / "suites").mkdir(parents=True)
    (r / "evals" / "datasets").mkdir(parents=True)
    rows = [
        {"id": c.lower(), "vars": {"country": c}, "reference": city} for c, city in CAPITALS.items()
    ]
    (r / "evals" / "datasets" / "capitals.jsonl").write_text(
        "\n".join(json.dumps(x) for x in rows) + "\n"
    )
    (r / "prompts" / "capitals.yaml").write_text(prompt_yaml(GOOD_INSTRUCTION))
    git(r, "add", "-A")
    git(r, "commit", "-qm", "good prompt")
    git(r, "tag", "good")
    (r / "prompts" / "capitals.yaml").write_text(prompt_yaml("Tell me about the country."))
    git(r, "commit", "-qam", "damage the prompt")
    git(r, "tag", "damaged")
    (r / "prompts" / "capitals.yaml").write_text(prompt_yaml(GOOD_INSTRUCTION))
    (r / "README.md").write_text("unrelated change\n")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "restore, plus an unrelated change")
    git(r, "tag", "unchanged")
    return r


@pytest.fixture(scope="module")
def upstream() -> Iterator[TableUpstream]:
    u = TableUpstream().start()
    yield u
    u.stop()


def _plugins(cfg: GatewayConfig) -> list[Any]:
    """The gateway's own plug-ins (prompt rendering from git), as `llmops serve` wires them."""
    from gateway._plugins import default_plugins

    return list(default_plugins(cfg))


@pytest.fixture(scope="module")
def gateway(upstream: TableUpstream, repo: Path) -> Iterator[GatewayServer]:
    cfg = GatewayConfig(
        server={"request_timeout_s": 30, "connect_timeout_s": 2},
        auth={"enabled": True, "keys": [{"name": "evals", "sha256": hash_key(API_KEY)}]},
        health={"interval_s": 1, "timeout_s": 1},
        models=[
            {"name": "chat", "upstreams": [{"url": upstream.url}]},
            {"name": "weak", "upstreams": [{"url": upstream.url}]},
        ],
        prompts={"repo": str(repo), "dir": "prompts", "ref": "HEAD", "reload_interval_s": 0},
    )
    gw = GatewayServer(cfg, _plugins(cfg)).start()
    yield gw
    gw.stop()


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, gateway: GatewayServer, tmp_path: Path) -> Path:
    """Key and gateway URL in the environment; LLMOPS_HOME in a fresh folder (the cache)."""
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.setenv("LLMOPS_EVAL_BASE_URL", gateway.url + "/v1")
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    for k in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path


def write_suite(repo: Path, name: str, **over: Any) -> Path:
    p = repo / "evals" / "suites" / f"{name}.yaml"
    p.write_text(yaml.safe_dump(suite_dict(**over), sort_keys=False))
    return p
