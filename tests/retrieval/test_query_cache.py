"""The query-vector cache `make_embedder` wraps around every embedder: hits skip the model,
the bound evicts the least recently used query, size 0 turns it off, threads share it safely."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from retrieval import EmbedderConfig, make_embedder
from retrieval._embedders import CachedQueryEmbedder, Embedder, SentenceTransformerEmbedder


class CountingEmbedder:
    """Test stand-in for the Embedder protocol (no model): a deterministic vector per text,
    counting how often each method is called so a cache hit is visible."""

    name = "counting-stand-in"
    dim = 4
    max_tokens = 128
    model = "stand-in model attribute"

    def __init__(self) -> None:
        self.query_calls = 0
        self.document_calls = 0
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def _vec(self, text: str) -> np.ndarray:
        v = np.array([len(text), sum(map(ord, text)) % 97, 1.0, 2.0], dtype=np.float32)
        return v / np.linalg.norm(v)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.document_calls += 1
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            self.query_calls += 1
        return self._vec(text)


def test_hit_returns_same_vector_without_calling_inner() -> None:
    inner = CountingEmbedder()
    emb = CachedQueryEmbedder(inner, 8)
    first = emb.embed_query("what is hmac")
    second = emb.embed_query("what is hmac")
    assert inner.query_calls == 1
    assert (emb.cache_misses, emb.cache_hits) == (1, 1)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, inner._vec("what is hmac"))
    emb.embed_query("What is hmac")  # exact text: case matters
    assert inner.query_calls == 2


def test_cached_vector_is_read_only() -> None:
    emb = CachedQueryEmbedder(CountingEmbedder(), 8)
    vec = emb.embed_query("q")
    with pytest.raises(ValueError):
        vec[0] = 42.0
    copy = vec.copy()
    copy[0] = 42.0
    assert emb.embed_query("q")[0] != 42.0


def test_protocol_and_passthrough() -> None:
    inner = CountingEmbedder()
    emb = CachedQueryEmbedder(inner, 8)
    assert isinstance(emb, Embedder)
    assert (emb.name, emb.dim, emb.max_tokens) == (inner.name, inner.dim, inner.max_tokens)
    assert emb.model == inner.model  # forwarded: the gateway reads `model.tokenizer`
    assert emb.count_tokens(["a b c"]) == [3]
    emb.embed_documents(["x", "y"])
    emb.embed_documents(["x", "y"])
    assert inner.document_calls == 2 and len(emb) == 0  # documents are never cached
    assert getattr(emb, "no_such_attribute", None) is None


def test_eviction_at_the_bound_is_lru() -> None:
    inner = CountingEmbedder()
    emb = CachedQueryEmbedder(inner, 2)
    emb.embed_query("a")
    emb.embed_query("b")
    emb.embed_query("a")  # "a" is now the most recent; "b" goes next
    emb.embed_query("c")
    assert len(emb) == 2
    calls = inner.query_calls
    emb.embed_query("a")
    emb.embed_query("c")
    assert inner.query_calls == calls
    emb.embed_query("b")
    assert inner.query_calls == calls + 1


def test_size_zero_disables_and_negative_is_refused() -> None:
    assert EmbedderConfig().query_cache_size == 4096
    with pytest.raises(ValidationError):
        EmbedderConfig(query_cache_size=-1)
    with pytest.raises(ValueError):
        CachedQueryEmbedder(CountingEmbedder(), 0)


def test_make_embedder_applies_the_setting() -> None:
    cached = make_embedder(EmbedderConfig())
    assert isinstance(cached, CachedQueryEmbedder) and cached.size == 4096
    assert isinstance(cached.inner, SentenceTransformerEmbedder)
    assert cached.model is cached.inner.model
    v = cached.embed_query("how do I compare digests")
    assert v.shape == (cached.dim,) and not v.flags.writeable
    assert cached.embed_query("how do I compare digests") is v
    plain = make_embedder(EmbedderConfig(query_cache_size=0))
    assert isinstance(plain, SentenceTransformerEmbedder)


def test_concurrent_threads_share_the_cache() -> None:
    inner = CountingEmbedder()
    emb = CachedQueryEmbedder(inner, 16)
    queries = [f"query {i}" for i in range(10)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(seed: int) -> None:
        try:
            barrier.wait()
            for r in range(200):
                q = queries[(seed + r) % len(queries)]
                np.testing.assert_array_equal(emb.embed_query(q), inner._vec(q))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert emb.cache_hits + emb.cache_misses == 8 * 200
    assert len(emb) == len(queries)
    # Racing misses of one text may each embed it once, never more than once per thread.
    assert len(queries) <= inner.query_calls <= len(queries) * 8
