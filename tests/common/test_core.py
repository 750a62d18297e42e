"""The shared core: one rule per cross-cutting need, used by every package."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from common import (
    QUESTION_VARS,
    Git,
    GitError,
    llmops_home,
    local_embedder,
    openai_base_url,
    question_in,
    server_root,
)


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://h", "http://h"),
        ("http://h/", "http://h"),
        ("http://h/v1", "http://h"),
        ("http://h/v1/", "http://h"),
        ("http://h//v1//", "http://h"),
        ("http://h:8000/prefix/v1", "http://h:8000/prefix"),
        ("http://h/v10", "http://h/v10"),
    ],
)
def test_urls(url: str, root: str) -> None:
    assert server_root(url) == root
    assert openai_base_url(url) == root + "/v1"


def test_every_package_normalises_alike() -> None:
    """The suite target, the ragas judge and the gateway's upstreams agree on one spelling."""
    from evals._suite import TargetSpec
    from gateway._config import UpstreamConfig

    for url in ("http://h/", "http://h/v1/", "http://h"):
        assert UpstreamConfig(url=url).url == "http://h"
        assert TargetSpec(base_url=url).resolved_base_url() == "http://h/v1"


def test_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMOPS_HOME", raising=False)
    assert llmops_home() == Path("~/.cache/llmops").expanduser()
    monkeypatch.setenv("LLMOPS_HOME", "")
    assert llmops_home() == Path("~/.cache/llmops").expanduser()
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    assert llmops_home() == tmp_path
    assert llmops_home(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("LLMOPS_HOME", "~/somewhere")
    assert llmops_home() == Path("~/somewhere").expanduser()


def test_packages_share_the_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from engine import model_dir
    from evals._cache import default_cache_dir
    from observability import DriftSamplingConfig
    from retrieval import RetrievalConfig

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    assert model_dir("m").parent.parent == tmp_path
    assert default_cache_dir().parent.parent == tmp_path
    assert DriftSamplingConfig().store_dir().parent == tmp_path
    assert RetrievalConfig().resolved_home() == tmp_path


def test_question_fields_are_read_alike() -> None:
    """The evals, the drift sampler and the drift reference find the same question."""
    import evals._dataset
    from monitor._reference import case_question
    from observability import query_text

    assert evals._dataset.QUESTION_VARS is QUESTION_VARS
    for variables, expected in (
        ({"query": "q1", "context": "c"}, "q1"),
        ({"input": "", "text": "t"}, "t"),
        ({"topic": "a", "style": "b"}, "a\nb"),
    ):
        assert question_in(variables, join_others=True) == expected
        assert query_text({"prompt": {"id": "p", "variables": variables}}, "chat") == expected
        assert case_question({"vars": variables}) == expected


def test_git_reader(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")
    g = Git(tmp_path / ".")
    base = g.resolve("HEAD")
    assert g.toplevel() == tmp_path.resolve()
    assert g.read_blobs([f"{base}:a.txt"]) == {f"{base}:a.txt": b"one\n"}
    assert g.merge_base("main", "HEAD") == base
    with pytest.raises(GitError, match="unknown git ref"):
        g.resolve("no-such-branch")


def test_embedder_is_loaded_once_per_process() -> None:
    from evals._semantic import Embedder
    from retrieval import EmbedderConfig, SentenceTransformerEmbedder

    shared = local_embedder()
    assert local_embedder(None) is shared
    assert Embedder().local is shared
    st = SentenceTransformerEmbedder(EmbedderConfig())
    assert st.model is shared.model


def test_encode_from_eight_threads_at_once() -> None:
    """Fast tokenizers raise "Already borrowed" when one model is used from several threads at
    once; the evals' semantic metric encodes from ``to_thread`` workers, so every path must hold
    the shared lock."""
    from evals._semantic import Embedder

    ev = Embedder()
    texts = [f"sentence number {i} about the capital of France" for i in range(24)]
    expected = local_embedder().encode(texts)
    barrier = threading.Barrier(8)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                results[i] = ev.encode(texts) if i % 2 else local_embedder().encode(texts)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got in results.values():
        np.testing.assert_allclose(got, expected, atol=1e-5)


async def test_semantic_similarity_concurrently() -> None:
    from evals._semantic import Embedder

    ev = Embedder()
    sims = await asyncio.gather(
        *(ev.similarity(f"Paris is the capital {i}", ["Paris", "Berlin"]) for i in range(8))
    )
    assert all(0.0 < s <= 1.0 + 1e-6 for s in sims)
