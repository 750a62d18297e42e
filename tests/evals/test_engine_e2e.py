"""The shipped rag-answer suite end to end on the real engine (vLLM CPU, SmolLM2-135M) behind the
real gateway: an unchanged prompt passes, a harmless rewording passes on its own fresh generations
(the gate's default ``inconclusive: fail`` included), a deliberately damaged one fails with a
clear report. Every comparison runs the whole suite, the n its allowances are sized for (a fresh
side takes about a minute on a 2-core CPU).

Marker ``engine``: needs the prepared engine venv and model (``make test`` prepares them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
# the same request in other words: tokens change, meaning does not
REWORD = ("Answer using only the sources.", "Use nothing but the sources to answer.")
# a template edit that still renders but hides what the answer needs
DAMAGE = ("{{ d.text | truncate(600) }}", "{{ d.id }}")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped prompt, suite and dataset; tag ``good``, then ``damaged`` (the
    template shows each source's id instead of its text, a broken edit that still renders),
    then ``unchanged``, then
    ``reworded`` (the system message says the same in other words)."""
    r = tmp_path_factory.mktemp("engine-repo")
    _git(r, "init", "-q", "-b", "main")
    _git(r, "config", "user.email", "t@example.com")
    _git(r, "config", "user.name", "t")
    for rel in (
        "prompts/rag-answer.yaml",
        "evals/suites/rag-answer.yaml",
        "evals/datasets/rag-answer.jsonl",
    ):
        (r / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, r / rel)
    _git(r, "add", "-A")
    _git(r, "commit", "-qm", "good")
    _git(r, "tag", "good")
    p = r / "prompts" / "rag-answer.yaml"
    good = p.read_text()
    assert DAMAGE[0] in good
    p.write_text(good.replace(*DAMAGE))
    _git(r, "commit", "-qam", "damage: the sources lose their text")
    _git(r, "tag", "damaged")
    p.write_text(good)
    (r / "NOTES.md").write_text("unrelated\n")
    _git(r, "add", "-A")
    _git(r, "commit", "-qm", "restore")
    _git(r, "tag", "unchanged")
    data = yaml.safe_load(good)
    system = data["messages"][0]
    assert system["role"] == "system" and REWORD[0] in system["content"], system
    system["content"] = system["content"].replace(*REWORD)
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    _git(r, "commit", "-qam", "reword the instruction")
    _git(r, "tag", "reworded")
    return r


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generation cache for the module: the base is generated once. A head at another prompt
    version has other cache keys, so its answers are always its own."""
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    from tests.engine.conftest import engine_spec, require_prepared_engine
    from tests.fakes.servers import GatewayServer

    require_prepared_engine()
    from gateway import GatewayConfig

    cfg = GatewayConfig(
        auth={"enabled": False},
        server={"request_timeout_s": 300},
        models=[{"name": MODEL, "engine": engine_spec().model_dump()}],
        prompts=None,
    )
    server = GatewayServer(cfg).start(timeout=900)
    try:
        yield server.url + "/v1"
    finally:
        server.stop()


def _compare(
    repo: Path, head: str, out: Path, cache: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, Any, str]:
    monkeypatch.setenv("LLMOPS_EVAL_BASE_URL", url)
    res = CliRunner().invoke(
        app,
        [
            "compare",
            str(repo / "evals" / "suites" / "rag-answer.yaml"),
            "--base",
            "good",
            "--head",
            head,
            "--out",
            str(out),
            "--cache-dir",
            str(cache),
            "--no-progress",
            "--no-langfuse",
        ],
    )
    data = json.loads((out / "report.json").read_text())
    return res.exit_code, data, (out / "report.md").read_text()


def test_unchanged_prompt_passes_on_the_engine(
    repo: Path, gateway_url: str, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, data, md = _compare(repo, "unchanged", tmp_path / "o", cache, gateway_url, monkeypatch)
    assert code == 0, md
    s = data["suites"][0]
    assert s["head"]["cache_misses"] == 0  # same prompt version: base's answers reused
    assert all(m["status"] == "pass" for m in s["metrics"])


def test_harmless_rewording_passes_on_its_own_generations(
    repo: Path, gateway_url: str, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The no-op that a cache cannot fake: the head's prompt version differs, so all of its
    answers are generated afresh; with the suite's allowances sized by measured power the
    differences stay inside them, and ``inconclusive`` (the default policy: fail) is not hit."""
    code, data, md = _compare(repo, "reworded", tmp_path / "o", cache, gateway_url, monkeypatch)
    s = data["suites"][0]
    assert s["gate"]["inconclusive"] == "fail"
    head = s["head"]
    assert head["cache_hits"] == 0 and head["cache_misses"] == len(head["cases"]) > 0
    assert s["base"]["target"]["version"] != s["head"]["target"]["version"]
    assert code == 0, md
    assert all(m["status"] == "pass" for m in s["metrics"]), md
    # the answers did change: this is not an identical run in disguise
    assert any(m["delta"] != 0 for m in s["metrics"]), md


def test_damaged_prompt_fails_on_the_engine(
    repo: Path, gateway_url: str, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, data, md = _compare(repo, "damaged", tmp_path / "o", cache, gateway_url, monkeypatch)
    assert code == 1, md
    assert md.splitlines()[1].startswith("## ❌ Evals failed")
    metrics = {m["metric"]: m for m in data["suites"][0]["metrics"]}
    assert metrics["contains"]["status"] == "fail"
    assert any("regression" in r or "misses threshold" in r for r in metrics["contains"]["reasons"])
    assert "Worst cases" in md


def test_head_that_loosens_its_gate_and_breaks_the_prompt_fails_on_the_engine(
    repo: Path, gateway_url: str, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One commit on top of ``damaged`` also loosens the suite (every allowance 1000, no
    thresholds, ``inconclusive: pass``): judged by the gate at ``good``, it still fails, and the
    report names the gate change."""
    from tests.evals.conftest import commit_files

    suite_file = repo / "evals" / "suites" / "rag-answer.yaml"
    good = suite_file.read_text()
    loose = yaml.safe_load(good)
    base_drop = next(m["max_regression"] for m in loose["metrics"] if m["type"] == "contains")
    for m in loose["metrics"]:
        m["max_regression"] = 1000.0
        m.pop("threshold", None)
    loose["gate"] = {"inconclusive": "pass", "min_cases": 1}
    head = commit_files(
        repo,
        "damaged",
        {suite_file: yaml.safe_dump(loose, sort_keys=False).encode()},
        "damaged-loosened",
    )
    _git(repo, "checkout", "-q", head)
    try:
        code, data, md = _compare(repo, head, tmp_path / "o", cache, gateway_url, monkeypatch)
    finally:
        _git(repo, "checkout", "-q", "main")
    assert code == 1, md
    s = data["suites"][0]
    metrics = {m["metric"]: m for m in s["metrics"]}
    assert metrics["contains"]["status"] == "fail"
    assert metrics["contains"]["max_regression"] == base_drop
    assert s["gate"]["inconclusive"] == "fail"
    assert any(f"max_regression {base_drop!r} -> 1000.0" in c for c in s["gate_changes"]), s
    assert "Gate changed" in md
