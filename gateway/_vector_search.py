"""Retrieval glue for the gateway: OpenAI's vector-store search endpoint over our collections,
the `retrieve` adapter prompt templates with a retrieval block call, and a `/v1/embeddings`
handler for models configured as local sentence-transformers models. Factories take their
collaborators and return routers/handlers; the app wires them in."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrieval import (
    RESERVED_PAYLOAD,
    CollectionMeta,
    CollectionNotFoundError,
    Embedder,
    Hit,
    InvalidFilterError,
    ModelMismatchError,
    RetrievalError,
    Retriever,
    SearchMode,
    StoreBusyError,
)

_FILE_NS = uuid.UUID("0b7a4c1e-52f3-4f55-9d3e-7e2f5d9a1c44")
_ATTRIBUTE_KEYS = ("source", "path", "filename", "title", "heading", "position", "page", "doc_type")

RetrieveFn = Callable[[str, str, int, Mapping[str, Any] | None], Awaitable[list[dict[str, Any]]]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def openai_error(
    message: str,
    status: int,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    return _json(
        {"error": {"message": message, "type": type, "param": param, "code": code}}, status
    )


_T = TypeVar("_T", bound=BaseModel)


async def parse_body(
    request: Request, model: type[_T], *, empty: bytes | None = b"{}"
) -> _T | Response:
    """The JSON body as ``model``, or the OpenAI-shaped 400 naming what is wrong. ``empty`` is
    what a body-less request stands for (None: a body is required)."""
    raw = await request.body()
    try:
        return model.model_validate(orjson.loads(raw or empty or b""))
    except orjson.JSONDecodeError as exc:
        return openai_error(f"request body is not valid JSON: {exc}", 400)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        return openai_error(f"invalid request: {err['msg']}", 400, param=param)


def _error_for(exc: Exception) -> Response:
    if isinstance(exc, CollectionNotFoundError):
        return openai_error(str(exc), 404, code="vector_store_not_found")
    if isinstance(exc, ModelMismatchError):
        return openai_error(str(exc), 409, code="embedding_model_mismatch")
    if isinstance(exc, InvalidFilterError):
        return openai_error(str(exc), 400, param="filters", code="invalid_filter")
    if isinstance(exc, ValueError):  # invalid collection names and the like
        return openai_error(str(exc), 400, code="invalid_value")
    if isinstance(exc, StoreBusyError):
        return openai_error(str(exc), 503, type="server_error", code="store_busy")
    return openai_error(str(exc), 500, type="server_error")


class _HybridWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedding_weight: float = Field(ge=0)
    text_weight: float = Field(ge=0)


class _RankingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(default=0.0, ge=0, le=1)
    hybrid_search: _HybridWeights | None = None


class VectorStoreSearchRequest(BaseModel):
    """OpenAI's request body; `mode` is our documented extension (rrf|dbsf|dense|sparse)."""

    model_config = ConfigDict(extra="forbid")
    query: str | list[str]
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: dict[str, Any] | None = None
    ranking_options: _RankingOptions | None = None
    rewrite_query: bool = False
    mode: SearchMode | None = None


def normalised_score(
    raw: float, mode: str, weights: tuple[float, float] | None, rrf_k: int
) -> float:
    """OpenAI scores lie in [0, 1]. Cosine is clipped; RRF divides by its maximum
    (sum of weights / k, ranks from 0); DBSF sums two [0, 1] scores; BM25 maps s -> s/(1+s).
    All maps are monotonic, so the order is the engine's."""
    if mode == "rrf":
        top = sum(weights or (1.0, 1.0)) / rrf_k
        value = raw / top if top > 0 else 0.0
    elif mode == "dbsf":
        value = raw / 2.0
    elif mode == "sparse":
        value = raw / (1.0 + raw) if raw > 0 else 0.0
    else:
        value = raw
    return float(min(1.0, max(0.0, value)))


def file_id(source: str) -> str:
    """The id a file ingested outside the files API (by the CLI) is known by."""
    return "file-" + uuid.uuid5(_FILE_NS, source).hex


def _attributes(hit: Hit, raw_score: float) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key in _ATTRIBUTE_KEYS:
        value = hit.metadata.get(key)
        if isinstance(value, str | int | float | bool):
            attrs[key] = value[:512] if isinstance(value, str) else value
    tags = hit.metadata.get("tags")
    if tags:
        attrs["tags"] = ",".join(str(t) for t in tags)[:512]
    for key, value in hit.metadata.items():  # attributes given when the file was attached
        if (
            key not in RESERVED_PAYLOAD
            and key != "file_id"
            and isinstance(value, str | int | float | bool)
        ):
            attrs[key] = value
    attrs["chunk_id"] = hit.id
    attrs["raw_score"] = raw_score
    return attrs


def make_vector_search_router(retriever: Retriever) -> APIRouter:
    """`POST /v1/vector_stores/{collection}/search` in OpenAI's shapes."""
    router = APIRouter()

    @router.post("/v1/vector_stores/{collection}/search")
    async def search_vector_store(collection: str, request: Request) -> Response:
        req = await parse_body(request, VectorStoreSearchRequest, empty=None)
        if isinstance(req, Response):
            return req
        queries = [req.query] if isinstance(req.query, str) else req.query
        if not queries or not all(q.strip() for q in queries):
            return openai_error("query must be a non-empty string", 400, param="query")
        text = " ".join(queries)
        ranking = req.ranking_options or _RankingOptions()
        weights = (
            (ranking.hybrid_search.embedding_weight, ranking.hybrid_search.text_weight)
            if ranking.hybrid_search
            else None
        )

        def run() -> tuple[CollectionMeta, SearchMode, list[Hit]]:
            # One worker-thread hop for the metadata and the search: each hop costs a
            # context switch that is a sizeable share of a 3 ms search on a small CPU.
            meta = retriever.collection_meta(collection)
            mode = retriever.resolve_mode(collection, req.mode)
            hits = retriever.search_sync(
                collection,
                text,
                req.max_num_results,
                req.filters,
                mode,
                weights=weights,
                rerank=ranking.ranker != "none",
            )
            return meta, mode, hits

        try:
            meta, mode, hits = await asyncio.to_thread(run)
        except (RetrievalError, ValueError) as exc:
            return _error_for(exc)
        data = []
        for h in hits:
            score = normalised_score(h.score, mode, weights or meta.weights, meta.rrf_k)
            if score < ranking.score_threshold:
                continue
            data.append(
                {
                    "file_id": str(h.metadata.get("file_id") or file_id(h.source)),
                    "filename": str(h.metadata.get("filename") or h.source),
                    "score": score,
                    "attributes": _attributes(h, h.score),
                    "content": [{"type": "text", "text": h.text}],
                }
            )
        return _json(
            {
                "object": "vector_store.search_results.page",
                "search_query": queries,
                "data": data,
                "has_more": False,
                "next_page": None,
            }
        )

    return router


def make_retrieve(retriever: Retriever) -> RetrieveFn:
    """The adapter `gateway/_prompt_resolution.py` calls for a template's retrieval block:
    returns plain dicts (id, score, text, source, metadata), raises `RetrievalError`."""

    async def retrieve(
        collection: str, query: str, top_k: int, filters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        hits = await retriever.search(collection, query, top_k, filters)
        return [h.as_dict() for h in hits]

    return retrieve


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


def make_local_embeddings_handler(
    embedders: Mapping[str, Embedder],
) -> Callable[[Mapping[str, Any]], Awaitable[Response]]:
    """Serve `/v1/embeddings` for models configured as local sentence-transformers models.
    Takes the parsed JSON body; the model runs in a thread so the event loop stays free."""

    async def handle(body: Mapping[str, Any]) -> Response:
        try:
            req = EmbeddingsRequest.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(p) for p in err["loc"]) or None
            return openai_error(f"invalid request: {err['msg']}", 400, param=param)
        embedder = embedders.get(req.model)
        if embedder is None:
            return openai_error(
                f"model {req.model!r} is not a local embedding model", 404, param="model",
                code="model_not_found",
            )  # fmt: skip
        if req.dimensions is not None and req.dimensions != embedder.dim:
            return openai_error(
                f"model {req.model!r} only produces {embedder.dim} dimensions", 400,
                param="dimensions",
            )  # fmt: skip
        raw = req.input
        if isinstance(raw, str):
            texts = [raw]
        elif raw and all(isinstance(x, int) for x in raw):
            texts = [_decode_tokens(embedder, raw)]  # type: ignore[arg-type]
        elif raw and all(isinstance(x, list) for x in raw):
            texts = [_decode_tokens(embedder, ids) for ids in raw]  # type: ignore[arg-type]
        else:
            texts = list(raw)  # type: ignore[arg-type]
        if not texts or len(texts) > 2048 or any(not isinstance(t, str) or not t for t in texts):
            return openai_error(
                "input must be a non-empty string or 1 to 2048 non-empty strings", 400,
                param="input",
            )  # fmt: skip
        try:
            vectors, tokens = await asyncio.to_thread(_embed, embedder, texts)
        except RetrievalError as exc:
            return openai_error(str(exc), 502, type="server_error")
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(v.astype("<f4").tobytes()).decode()
                    if req.encoding_format == "base64"
                    else v.tolist()
                ),
            }
            for i, v in enumerate(vectors)
        ]
        return _json(
            {
                "object": "list",
                "data": data,
                "model": req.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    return handle


def _decode_tokens(embedder: Embedder, ids: list[int]) -> str:
    tokenizer = getattr(getattr(embedder, "model", None), "tokenizer", None)
    if tokenizer is None:
        raise ValueError("token-id input needs a local tokenizer")
    return str(tokenizer.decode(ids, skip_special_tokens=True))


def _embed(embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, int]:
    return embedder.embed_documents(texts), sum(embedder.count_tokens(texts))


def make_embeddings_router(embedders: Mapping[str, Embedder]) -> APIRouter:
    """A standalone `POST /v1/embeddings` route over local models (the gateway may instead
    call the handler from its own route when the requested model is local)."""
    router = APIRouter()
    handle = make_local_embeddings_handler(embedders)

    @router.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return openai_error(f"request body is not valid JSON: {exc}", 400)
        if not isinstance(body, dict):
            return openai_error("request body must be a JSON object", 400)
        try:
            return await handle(body)
        except ValueError as exc:
            return openai_error(str(exc), 400, param="input")

    return router
