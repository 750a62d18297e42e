"""The `ingest`/`search` commands as users run them, and an ingest killed mid-run (SIGKILL)
that the next run completes without re-embedding what was already stored."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrieval import RetrievalConfig, Retriever, StoreConfig
from retrieval.cli import app

from .conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def _store(backend: str, tmp_path: Path) -> StoreConfig:
    if backend == "edge":
        return StoreConfig(backend="edge", path=str(tmp_path / "edge"))
    return StoreConfig(backend="qdrant", path=str(tmp_path / "qdrant-local"))


@pytest.mark.parametrize("backend", ["edge", "qdrant-local"])
def test_killed_ingest_resumes(backend: str, tmp_path: Path, embedder) -> None:
    docs = tmp_path / "pydocs"
    docs.mkdir()
    for name in ("copy.rst", "pwd.rst", "token.rst"):  # 14 chunks: two windows of 8 at batch size 1
        shutil.copy(FIXTURES / "pydocs" / "library" / name, docs / name)
    store = _store(backend, tmp_path)
    cmd = [
        sys.executable, "-m", "retrieval.cli", "ingest", str(docs), "--collection", "py",
        "--backend", store.backend, "--store-path", str(store.path), "--batch-size", "1", "-v",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("added "):
            proc.send_signal(signal.SIGKILL)  # no chance to clean up: like a crash or OOM kill
            break
        assert time.monotonic() < deadline, "".join(seen)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)

    retriever = Retriever(RetrievalConfig(store=store), embedder=embedder)
    try:
        before = retriever.store.count("py")
        report = retriever.ingest([str(docs)], "py")
        total = report.chunks_total
        assert 0 < before < total
        assert report.unchanged, "the file committed before the kill must not be redone"
        assert report.chunks_embedded == total - before  # only what the killed run lacked
        assert retriever.store.count("py") == total
        for source, n in retriever.store.sources("py").items():
            hit = retriever.search_sync("py", "module", 1, {"source": source})[0]
            assert hit.metadata["chunk_count"] == n
        again = retriever.ingest([str(docs)], "py")
        assert report.chunks_reused > 0  # the half-stored file kept its stored chunks
        assert not report.updated  # nothing older than this run's own chunks was there
        assert again.chunks_embedded == 0
        assert len(again.unchanged) == len(report.unchanged) + len(report.added) == 3
    finally:
        retriever.close()


def test_cli_ingest_then_search(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(FIXTURES / "mixed", docs)
    (docs / "outside.md").symlink_to(FIXTURES / "pydocs" / "library" / "copy.rst")
    store = str(tmp_path / "edge")
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(docs), "-c", "kb", "--store-path", store, "-t", "ops"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "files added │ 4" in out.replace("┃", "│")
    assert "binary.txt" in out and "latin1.txt" in out and "broken.pdf" in out
    assert "symlink leads outside" in out

    res = runner.invoke(
        app, ["search", "how hot should the water be", "-c", "kb", "--store-path", store]
    )
    assert res.exit_code == 0, res.output
    assert "manual.pdf" in res.output and "score" in res.output

    res = runner.invoke(
        app, ["search", "water", "-c", "kb", "--store-path", store, "--json", "--mode", "sparse"]
    )
    assert res.exit_code == 0, res.output
    import json

    hits = [json.loads(line[line.index("{") :]) for line in res.output.splitlines() if "{" in line]
    assert hits and hits[0]["metadata"]["filename"] == "manual.pdf"
    assert hits[0]["metadata"]["tags"] == ["ops"]

    res = runner.invoke(app, ["search", "x", "-c", "missing", "--store-path", store])
    assert res.exit_code == 1 and "does not exist" in res.output
