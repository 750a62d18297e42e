"""One suite, both store backends (embedded Qdrant Edge and qdrant-client, here in local
mode): ingest, idempotent re-ingest, changed files, prune, search modes, filters, and the
embedding-model check. Real engine, real model; nothing mocked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from retrieval import (
    CollectionNotFoundError,
    InvalidFilterError,
    ModelMismatchError,
    Retriever,
)


def _ingest(r: Retriever, corpus: Path, **kw):
    return r.ingest([str(corpus)], "docs", **kw)


def test_ingest_reports_and_stores_metadata(retriever: Retriever, corpus: Path) -> None:
    report = _ingest(retriever, corpus, tags=["team-a"])
    failed = {Path(p).name for p, _ in report.failed}
    assert failed == {"binary.txt", "latin1.txt", "broken.pdf"}
    assert len(report.added) == 7
    assert report.chunks_embedded == report.chunks_total > 0
    assert retriever.store.count("docs") == report.chunks_total
    hits = retriever.search_sync("docs", "HMAC keyed hashing for message authentication", 3)
    top = hits[0]
    assert top.metadata["filename"] == "hmac.rst"
    assert top.source == str((corpus / "library" / "hmac.rst").resolve())
    assert top.metadata["title"].startswith(":mod:`hmac`")
    assert top.metadata["doc_type"] == "rst"
    assert top.metadata["tags"] == ["team-a"]
    assert isinstance(top.metadata["position"], int)
    assert top.text and "fingerprint" not in top.metadata


def test_reingest_unchanged_is_a_no_op(retriever: Retriever, corpus: Path) -> None:
    first = _ingest(retriever, corpus)
    again = _ingest(retriever, corpus)
    assert again.chunks_embedded == 0
    assert sorted(again.unchanged) == sorted(first.added)
    assert not again.added and not again.updated
    assert retriever.store.count("docs") == first.chunks_total


def test_changed_file_replaces_only_its_chunks(retriever: Retriever, corpus: Path) -> None:
    _ingest(retriever, corpus)
    guide = corpus / "mixed" / "guide.md"
    source = str(guide.resolve())
    text = guide.read_text().replace("Rotate them every 90 days.", "Rotate them every 30 days.")
    guide.write_text(text + "\n## Backups\n\nSnapshot the data directory nightly.\n")
    report = _ingest(retriever, corpus)
    assert report.updated == [source]
    assert 0 < report.chunks_embedded < report.chunks_total
    assert report.chunks_reused > 0  # untouched sections keep their vectors
    hits = retriever.search_sync("docs", "how often are API keys rotated", 5, {"source": source})
    texts = " ".join(h.text for h in hits)
    assert "30 days" in texts and "90 days" not in texts
    n = hits[0].metadata["chunk_count"]
    assert retriever.store.count("docs", _source_filter(source)) == n == 5


def _source_filter(source: str):
    from retrieval import ComparisonFilter

    return ComparisonFilter(type="eq", key="source", value=source)


def test_prune_removes_vanished_files_only(retriever: Retriever, corpus: Path) -> None:
    first = _ingest(retriever, corpus)
    gone = corpus / "library" / "copy.rst"
    gone.unlink()
    without = _ingest(retriever, corpus)  # no --prune: chunks stay
    assert not without.pruned
    pruned = _ingest(retriever, corpus, prune=True)
    assert pruned.pruned == [str(gone.resolve())]
    assert retriever.store.count("docs", _source_filter(str(gone.resolve()))) == 0
    assert retriever.store.count("docs") < first.chunks_total
    assert set(retriever.store.sources("docs")) == set(pruned.unchanged)


@pytest.mark.parametrize("mode", ["rrf", "dbsf", "dense", "sparse"])
def test_search_modes_find_the_right_page(retriever: Retriever, corpus: Path, mode) -> None:
    _ingest(retriever, corpus)
    hits = retriever.search_sync("docs", "fnmatch Unix shell-style wildcards", 3, mode=mode)
    assert hits and hits[0].metadata["filename"] == "fnmatch.rst"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters(retriever: Retriever, corpus: Path) -> None:
    _ingest(retriever, corpus, tags=["docs"])
    retriever.ingest([str(corpus / "mixed" / "notes.txt")], "docs", tags=["coffee"])
    coffee = retriever.search_sync("docs", "machine", 10, {"tags": ["coffee"]})
    assert {h.metadata["filename"] for h in coffee} == {"notes.txt"}
    html_or_pdf = retriever.search_sync(
        "docs",
        "security",
        10,
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "doc_type", "value": "html"},
                {"type": "eq", "key": "doc_type", "value": "pdf"},
            ],
        },
    )
    assert html_or_pdf and {h.metadata["doc_type"] for h in html_or_pdf} <= {"html", "pdf"}
    not_rst = retriever.search_sync(
        "docs", "copy", 10, {"type": "nin", "key": "doc_type", "value": ["rst", "markdown"]}
    )
    assert not_rst and all(h.metadata["doc_type"] not in ("rst", "markdown") for h in not_rst)
    later = retriever.search_sync(
        "docs", "copy", 20, {"type": "gte", "key": "position", "value": 2}
    )
    assert later and all(h.metadata["position"] >= 2 for h in later)
    with pytest.raises(InvalidFilterError):
        retriever.search_sync("docs", "x", 3, {"type": "gt", "key": "position", "value": "a"})


def test_other_model_is_refused(retriever: Retriever, corpus: Path, embedder) -> None:
    _ingest(retriever, corpus)

    class Renamed:
        """The same vectors under another model name: still must be refused."""

        name = "some-other-model"
        dim = embedder.dim
        max_tokens = embedder.max_tokens
        count_tokens = staticmethod(embedder.count_tokens)
        embed_documents = staticmethod(embedder.embed_documents)
        embed_query = staticmethod(embedder.embed_query)

    other = Retriever(retriever.config, embedder=Renamed(), store=retriever.store)
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        other.search_sync("docs", "hmac", 3)
    with pytest.raises(ModelMismatchError):
        other.ingest([str(corpus)], "docs")


def test_unknown_collection(retriever: Retriever) -> None:
    with pytest.raises(CollectionNotFoundError):
        retriever.search_sync("nope", "anything", 3)
    with pytest.raises(ValueError):
        retriever.search_sync("../escape", "anything", 3)


async def test_async_search_keeps_the_loop_free(
    retriever: Retriever, corpus: Path, embedder
) -> None:
    await asyncio.to_thread(_ingest, retriever, corpus)

    class SlowQueries:
        """The real model, with query embedding made to block for 0.3 s like a busy CPU."""

        name, dim, max_tokens = embedder.name, embedder.dim, embedder.max_tokens
        count_tokens = staticmethod(embedder.count_tokens)
        embed_documents = staticmethod(embedder.embed_documents)

        @staticmethod
        def embed_query(text: str):
            time.sleep(0.3)
            return embedder.embed_query(text)

    slow = Retriever(retriever.config, embedder=SlowQueries(), store=retriever.store)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    hits = await slow.search("docs", "copy module deep copy", 3)
    done.set()
    await task
    assert hits and hits[0].metadata["filename"] == "copy.rst"
    # blocking the loop for 0.3 s would allow one tick; a worker thread leaves it ticking
    assert ticks >= 5


def test_reranker_hook_reorders_and_can_be_skipped(retriever: Retriever, corpus: Path) -> None:
    """Any object with `rerank(query, hits)` plugs in (a cross-encoder in production; here a
    rule that ranks shorter chunks first, so the effect is visible without a second model)."""
    from retrieval import Hit

    class ShortestFirst:
        def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
            return sorted(
                (Hit(h.id, 1.0 / len(h.text), h.text, h.source, h.metadata) for h in hits),
                key=lambda h: h.score,
                reverse=True,
            )

    _ingest(retriever, corpus)
    ranked = Retriever(retriever.config, embedder=retriever.embedder, store=retriever.store,
                       reranker=ShortestFirst())  # fmt: skip
    hits = ranked.search_sync("docs", "copy", 5)
    assert [len(h.text) for h in hits] == sorted(len(h.text) for h in hits)
    # dense mode: RRF orders exact ties differently from run to run on the embedded engine
    plain = ranked.search_sync("docs", "copy", 5, mode="dense", rerank=False)
    same = retriever.search_sync("docs", "copy", 5, mode="dense")
    assert [h.id for h in plain] == [h.id for h in same]
    kept = ranked.search_sync("docs", "copy", 5, score_threshold=1.0 / 200)
    assert all(h.score >= 1.0 / 200 for h in kept)
