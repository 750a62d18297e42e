"""OpenAI's files and vector store endpoints, as ``client.files`` and ``client.vector_stores``
of the official SDKs call them: upload files, create / list / retrieve / modify / delete
stores, attach files and file batches (ingested in the background, with status to poll), list
and detach files. Search is ``gateway._vector_search``. Request bodies are validated by the
models here; the objects returned follow OpenAI's shapes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway._files import FileNotFound, FileStore
from gateway._vector_search import _error_for, _json, openai_error, parse_body
from gateway._vector_store_jobs import StoreNotFound, VectorStoreJobs
from retrieval import RESERVED_PAYLOAD, RetrievalError

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
Attributes = dict[str, str | int | float | bool]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # expires_after: accepted, stores do not expire


class _StaticChunking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _half(self) -> _StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class ChunkingStrategy(BaseModel):
    """OpenAI's ``{"type": "auto"}`` or ``{"type": "static", "static": {...}}``, with its
    bounds (100-4096 tokens, overlap at most half)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["auto", "static"]
    static: _StaticChunking | None = None

    @model_validator(mode="after")
    def _static_needs_sizes(self) -> ChunkingStrategy:
        if (self.type == "static") != (self.static is not None):
            raise ValueError("'static' is required with type 'static' and only then")
        return self

    def as_dict(self) -> dict[str, Any] | None:
        return self.model_dump(exclude_none=True) if self.type == "static" else None


class CreateVectorStore(_Body):
    name: str | None = Field(None, max_length=256)
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    chunking_strategy: ChunkingStrategy | None = None


class ModifyVectorStore(_Body):
    name: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = Field(None, max_length=16)


class AttachFile(_Body):
    file_id: str
    attributes: Attributes | None = Field(None, max_length=16)
    chunking_strategy: ChunkingStrategy | None = None


class UpdateFile(_Body):
    attributes: Attributes | None = Field(None, max_length=16)


class CreateFileBatch(_Body):
    file_ids: list[str] = Field(min_length=1, max_length=500)
    attributes: Attributes | None = Field(None, max_length=16)
    chunking_strategy: ChunkingStrategy | None = None


def _chunking(body: Any) -> dict[str, Any] | None:
    cs: ChunkingStrategy | None = body.chunking_strategy
    return cs.as_dict() if cs is not None else None


def _check_attributes(attrs: Attributes | None) -> Response | None:
    bad = sorted(set(attrs or ()) & (RESERVED_PAYLOAD | {"file_id"}))
    if bad:
        return openai_error(f"attribute names reserved for the chunks' own fields: {bad}", 400,
                            param="attributes", code="invalid_value")  # fmt: skip
    return None


def _page(items: list[dict[str, Any]], request: Request) -> Response | dict[str, Any]:
    """OpenAI's cursor page over ``items`` (given newest first): limit, order, after, before."""
    q = request.query_params
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        return openai_error("limit must be an integer", 400, param="limit")
    if not 1 <= limit <= 100:
        return openai_error("limit must be between 1 and 100", 400, param="limit")
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        return openai_error("order must be 'asc' or 'desc'", 400, param="order")
    rows = items if order == "desc" else list(reversed(items))
    ids = [r["id"] for r in rows]
    if q.get("after"):
        rows = rows[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
    elif q.get("before"):
        rows = rows[: ids.index(q["before"])] if q["before"] in ids else []
    data = rows[:limit]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(rows) > limit}  # fmt: skip


def _not_found(what: str, ident: str) -> Response:
    code = {"vector store": "vector_store_not_found", "file": "file_not_found",
            "file batch": "file_batch_not_found"}[what]  # fmt: skip
    return openai_error(f"No {what} found with id '{ident}'.", 404, code=code)


Handler = Callable[..., Coroutine[Any, Any, Any]]


def _answer(what: str) -> Callable[[Handler], Handler]:
    """Map the registries' misses and the store's errors to OpenAI errors; a dict is JSON."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)  # FastAPI reads the parameters through __wrapped__
        async def handler(*args: Any, **kwargs: Any) -> Response:
            try:
                out = await fn(*args, **kwargs)
            except StoreNotFound as exc:
                return _not_found("vector store", str(exc.args[0]))
            except FileNotFound as exc:
                return _not_found(what, str(exc.args[0]))
            except (RetrievalError, ValueError) as exc:
                return _error_for(exc)
            return _json(out) if isinstance(out, dict) else out

        return handler

    return wrap


def make_files_router(files: FileStore, max_upload_bytes: int) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/files")
    @_answer("file")
    async def upload(request: Request) -> Any:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_upload_bytes + (64 << 10):
            return _too_large(max_upload_bytes)
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception as exc:  # not multipart, or malformed
            return openai_error(f"expected a multipart/form-data upload: {exc}", 400)
        try:
            upload, purpose = form.get("file"), form.get("purpose")
            if upload is None or isinstance(upload, str):
                return openai_error("missing file part 'file'", 400, param="file")
            if purpose not in PURPOSES:
                return openai_error(f"purpose must be one of {', '.join(PURPOSES)}", 400,
                                    param="purpose")  # fmt: skip
            if upload.size is not None and upload.size > max_upload_bytes:
                return _too_large(max_upload_bytes)
            return await asyncio.to_thread(
                files.create, upload.filename or "upload", str(purpose), upload.file
            )
        finally:
            await form.close()

    @router.get("/v1/files")
    @_answer("file")
    async def list_files(request: Request) -> Any:
        items = await asyncio.to_thread(files.list, request.query_params.get("purpose"))
        return _page(items, request)

    @router.get("/v1/files/{file_id}")
    @_answer("file")
    async def get_file(file_id: str) -> Any:
        return await asyncio.to_thread(files.get, file_id)

    @router.get("/v1/files/{file_id}/content")
    @_answer("file")
    async def file_content(file_id: str) -> Any:
        path = await asyncio.to_thread(files.path, file_id)
        return FileResponse(path, media_type="application/octet-stream")

    @router.delete("/v1/files/{file_id}")
    @_answer("file")
    async def delete_file(file_id: str) -> Any:
        await asyncio.to_thread(files.delete, file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    return router


def _too_large(limit: int) -> Response:
    return openai_error(f"file exceeds the upload limit of {limit} bytes", 413,
                        param="file", code="file_too_large")  # fmt: skip


def make_vector_stores_router(jobs: VectorStoreJobs) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/vector_stores")
    @_answer("file")
    async def create_store(request: Request) -> Any:
        body = await parse_body(request, CreateVectorStore)
        if isinstance(body, Response):
            return body
        for fid in body.file_ids:  # every file known before anything is created
            await asyncio.to_thread(jobs.files.get, fid)
        store_id = await jobs.create(body.name, body.metadata, _chunking(body))
        for fid in body.file_ids:
            await jobs.attach(store_id, fid, {})
        return await jobs.store_object(store_id)

    @router.get("/v1/vector_stores")
    @_answer("vector store")
    async def list_stores(request: Request) -> Any:
        objs = [await jobs.store_object(i) for i in await jobs.ids()]
        objs.sort(key=lambda o: (o["created_at"], o["id"]), reverse=True)
        return _page(objs, request)

    @router.get("/v1/vector_stores/{store_id}")
    @_answer("vector store")
    async def get_store(store_id: str) -> Any:
        return await jobs.store_object(store_id)

    @router.post("/v1/vector_stores/{store_id}")
    @_answer("vector store")
    async def modify_store(store_id: str, request: Request) -> Any:
        body = await parse_body(request, ModifyVectorStore)
        if isinstance(body, Response):
            return body
        await jobs.update(store_id, body.name, body.metadata)
        return await jobs.store_object(store_id)

    @router.delete("/v1/vector_stores/{store_id}")
    @_answer("vector store")
    async def delete_store(store_id: str) -> Any:
        await jobs.delete(store_id)
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    @router.post("/v1/vector_stores/{store_id}/files")
    @_answer("file")
    async def attach(store_id: str, request: Request) -> Any:
        body = await parse_body(request, AttachFile)
        if isinstance(body, Response):
            return body
        return _check_attributes(body.attributes) or await jobs.attach(
            store_id, body.file_id, dict(body.attributes or {}), chunking=_chunking(body)
        )

    @router.get("/v1/vector_stores/{store_id}/files")
    @_answer("file")
    async def list_store_files(store_id: str, request: Request) -> Any:
        items = await jobs.file_objects(store_id)
        status = request.query_params.get("filter")
        if status is not None:
            items = [f for f in items if f["status"] == status]
        return _page(items, request)

    @router.get("/v1/vector_stores/{store_id}/files/{file_id}")
    @_answer("file")
    async def get_store_file(store_id: str, file_id: str) -> Any:
        return await jobs.file_object(store_id, file_id)

    @router.post("/v1/vector_stores/{store_id}/files/{file_id}")
    @_answer("file")
    async def update_store_file(store_id: str, file_id: str, request: Request) -> Any:
        body = await parse_body(request, UpdateFile)
        if isinstance(body, Response):
            return body
        await jobs.file_object(store_id, file_id)  # attached, or a 404
        return _check_attributes(body.attributes) or await jobs.attach(
            store_id, file_id, dict(body.attributes or {})
        )

    @router.delete("/v1/vector_stores/{store_id}/files/{file_id}")
    @_answer("file")
    async def detach(store_id: str, file_id: str) -> Any:
        await jobs.detach(store_id, file_id)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    @router.post("/v1/vector_stores/{store_id}/file_batches")
    @_answer("file")
    async def create_batch(store_id: str, request: Request) -> Any:
        body = await parse_body(request, CreateFileBatch)
        if isinstance(body, Response):
            return body
        bad = _check_attributes(body.attributes)
        if bad is not None:
            return bad
        batch_id = await jobs.create_batch(
            store_id, body.file_ids, dict(body.attributes or {}), _chunking(body)
        )
        return await jobs.batch_object(store_id, batch_id)

    @router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}")
    @_answer("file batch")
    async def get_batch(store_id: str, batch_id: str) -> Any:
        return await jobs.batch_object(store_id, batch_id)

    @router.post("/v1/vector_stores/{store_id}/file_batches/{batch_id}/cancel")
    @_answer("file batch")
    async def cancel_batch(store_id: str, batch_id: str) -> Any:
        await jobs.cancel_batch(store_id, batch_id)
        return await jobs.batch_object(store_id, batch_id)

    @router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}/files")
    @_answer("file batch")
    async def batch_files(store_id: str, batch_id: str, request: Request) -> Any:
        await jobs.batch_object(store_id, batch_id)  # the batch exists, or a 404
        ids = set(jobs.batch_files(await jobs.require(store_id), batch_id))
        items = [f for f in await jobs.file_objects(store_id) if f["id"] in ids]
        return _page(items, request)

    return router
