"""Query side: the `Retriever` the gateway and the CLI use. Async methods run the embedding
and the engine query in a thread, so an event loop never blocks on them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ._config import (
    ChunkingConfig,
    RerankerConfig,
    RetrievalConfig,
    SearchMode,
    validate_collection_name,
)
from ._embedders import Embedder, make_embedder
from ._errors import CollectionNotFoundError
from ._filters import Filter, parse_filters
from ._fusion import convex
from ._ingest import Ingestor, IngestProgress, IngestReport, check_model
from ._open import open_store
from ._sparse import Bm25Encoder
from ._store import CollectionMeta, QueryPlan, Store

_INTERNAL = ("text", "fingerprint")
_META_TTL_S = 5.0


@dataclass(slots=True)
class Hit:
    id: str
    score: float
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "text": self.text,
            "source": self.source,
            "metadata": self.metadata,
        }


class Reranker(Protocol):
    """Re-orders candidates by a stronger (slower) model; returns hits with new scores."""

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]: ...


class CrossEncoderReranker:
    """sentence-transformers CrossEncoder from a local folder (nothing is downloaded)."""

    def __init__(self, config: RerankerConfig) -> None:
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(config.model_path, device="cpu")
        self._lock = threading.Lock()

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        if not hits:
            return []
        with self._lock:
            scores = self._model.predict([(query, h.text) for h in hits], show_progress_bar=False)
        rescored = [
            Hit(h.id, float(s), h.text, h.source, h.metadata)
            for h, s in zip(hits, scores, strict=True)
        ]
        return sorted(rescored, key=lambda h: h.score, reverse=True)


class Retriever:
    """Search (and ingest) against one configured store with one embedding model. Loads the
    model on first use; holds open engine handles until `close()`."""

    def __init__(
        self,
        config: RetrievalConfig | None = None,
        *,
        embedder: Embedder | None = None,
        store: Store | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.config = config or RetrievalConfig()
        self._embedder = embedder
        self._store = store
        self._reranker = reranker
        self._bm25: dict[str, Bm25Encoder] = {}
        self._meta: dict[str, tuple[CollectionMeta, float]] = {}
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    self._embedder = make_embedder(self.config.embedder)
        return self._embedder

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.config.store, self.config.resolved_home())
        return self._store

    @property
    def reranker(self) -> Reranker | None:
        if self._reranker is None and self.config.reranker is not None:
            with self._lock:
                if self._reranker is None:
                    self._reranker = CrossEncoderReranker(self.config.reranker)
        return self._reranker

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def collections(self) -> list[str]:
        return self.store.list_collections()

    def collection_meta(self, collection: str) -> CollectionMeta:
        """Of the collection an alias names now. Cached for a few seconds by the collection's
        own name: on a server backend each lookup is a round trip, and an alias switch moves
        to another entry, so it is seen at once."""
        return self._meta_of(self.store.resolve(validate_collection_name(collection)), collection)

    def _meta_of(self, real: str, asked: str) -> CollectionMeta:
        now = time.monotonic()
        cached = self._meta.get(real)
        if cached is not None and now - cached[1] < _META_TTL_S:
            return cached[0]
        meta = self.store.collection_meta(real)
        if meta is None:
            self._meta.pop(real, None)
            raise CollectionNotFoundError(f"collection {asked!r} does not exist")
        self._meta[real] = (meta, now)
        return meta

    def forget_meta(self, collection: str) -> None:
        """Drop the cached metadata, after a change made through this retriever's store."""
        self._meta.pop(collection, None)
        self._meta.pop(self.store.resolve(collection), None)

    def resolve_mode(self, collection: str, mode: SearchMode | None = None) -> SearchMode:
        """The query's mode, else the config's override, else the collection's recorded one."""
        return mode or self.config.search.mode or self.collection_meta(collection).mode

    def ingest(
        self,
        paths: Sequence[str],
        collection: str,
        *,
        prune: bool = False,
        tags: Sequence[str] = (),
        progress: IngestProgress | None = None,
        attributes: Mapping[str, object] | None = None,
        chunking: ChunkingConfig | None = None,
    ) -> IngestReport:
        """``chunking`` replaces the config's chunking for these files only."""
        validate_collection_name(collection)
        self.forget_meta(collection)
        config = self.config if chunking is None else self.config.model_copy(
            update={"chunking": chunking})  # fmt: skip
        ingestor = Ingestor(self.store, self.embedder, config)
        return ingestor.run(paths, collection, prune=prune, tags=tags, progress=progress,
                            attributes=attributes)  # fmt: skip

    def create_collection(self, collection: str) -> CollectionMeta:
        """Create an empty collection for the configured embedder (or return the existing
        one's metadata, if it was built with the same model)."""
        validate_collection_name(collection)
        self.forget_meta(collection)
        return Ingestor(self.store, self.embedder, self.config).ensure_collection(collection)

    def search_sync(
        self,
        collection: str,
        query: str,
        top_k: int = 5,
        filters: Filter | Mapping[str, Any] | None = None,
        mode: SearchMode | None = None,
        *,
        score_threshold: float | None = None,
        weights: tuple[float, float] | None = None,
        rrf_k: int | None = None,
        alpha: float | None = None,
        rerank: bool | None = None,
    ) -> list[Hit]:
        flt = parse_filters(filters)
        # One resolution per search: the metadata, the encoders and the query all use the
        # version the alias named when the search began, even if it switches meanwhile.
        real = self.store.resolve(validate_collection_name(collection))
        meta = self._meta_of(real, collection)
        check_model(collection, meta, self.embedder)
        use_mode = mode or self.config.search.mode or meta.mode
        reranker = self.reranker if rerank is not False else None
        limit = (
            max(top_k, self.config.reranker.candidates)
            if reranker and self.config.reranker
            else top_k
        )
        plan = QueryPlan(
            mode=use_mode,
            limit=limit,
            filter=flt,
            prefetch_limit=max(self.config.search.prefetch_limit, limit),
            rrf_k=rrf_k or meta.rrf_k,
            weights=weights or meta.weights,
        )
        if use_mode != "sparse":
            plan.dense = self.embedder.embed_query(query).tolist()
        if use_mode != "dense":
            plan.sparse = self._encoder(meta).query(query)
        if use_mode == "convex":
            depth = plan.prefetch_limit
            dense = self.store.query(real, replace(plan, mode="dense", sparse=None,
                                                         limit=depth))  # fmt: skip
            sparse = self.store.query(real, replace(plan, mode="sparse", dense=None,
                                                          limit=depth))  # fmt: skip
            share = alpha if alpha is not None else meta.alpha
            found = convex(dense, sparse, share, limit)
        else:
            found = self.store.query(real, plan)
        hits = [_hit(h.id, h.score, h.payload) for h in found]
        if reranker is not None:
            hits = reranker.rerank(query, hits)
        if score_threshold is not None:
            hits = [h for h in hits if h.score >= score_threshold]
        return hits[:top_k]

    async def search(
        self,
        collection: str,
        query: str,
        top_k: int = 5,
        filters: Filter | Mapping[str, Any] | None = None,
        mode: SearchMode | None = None,
        **kwargs: Any,
    ) -> list[Hit]:
        return await asyncio.to_thread(
            self.search_sync, collection, query, top_k, filters, mode, **kwargs
        )

    def _encoder(self, meta: CollectionMeta) -> Bm25Encoder:
        """Query vectors depend only on the language (not on k, b or ``avg_len``), so one
        encoder per language serves every collection and version."""
        lang = meta.sparse.language
        enc = self._bm25.get(lang)
        if enc is None:
            enc = self._bm25[lang] = Bm25Encoder(meta.sparse)
        return enc


def _hit(pid: str, score: float, payload: dict[str, Any]) -> Hit:
    meta = {k: v for k, v in payload.items() if k not in _INTERNAL}
    return Hit(pid, score, str(payload.get("text", "")), str(payload.get("source", "")), meta)
