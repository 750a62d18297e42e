"""Admin routes for the versions of the collections the gateway serves, so a rebuild runs
while the gateway keeps serving (on the embedded engine only this process may open the
collection files): build ``kb@vN+1`` from the sources of what ``kb`` serves, in the
background; list versions; switch the alias, rollback, prune, drop. Judging a new version
before the switch is the caller's (``llmops retrieval rebuild`` scores both versions through
the search endpoint); the gateway only does the store's part.

A file attached to ``kb`` while its next version is built lands in the version serving; the
switch first brings the new version level with it (and once more right after the switch, for
a write that resolved the old version just before)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from gateway._vector_search import _error_for, _json, openai_error, parse_body
from gateway._vector_store_jobs import VectorStoreJobs
from retrieval import (
    ChunkingConfig,
    CollectionNotFoundError,
    ModelMismatchError,
    RebuildError,
    RetrievalError,
    Retriever,
    StoreBusyError,
    build_next_version,
    catch_up,
    collection_versions,
    prune_versions,
    rollback_alias,
    switch_alias,
    validate_alias_name,
)

log = logging.getLogger("llmops.gateway.collections")


class NewVersion(BaseModel):
    """The new version's chunking; the embedder stays the gateway's own (it searches with it)."""

    model_config = ConfigDict(extra="forbid")
    chunk_tokens: int | None = Field(None, ge=16, le=4096)
    overlap_tokens: int | None = Field(None, ge=0)


class SwitchTo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: str = Field(min_length=1, max_length=255)


class Prune(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep: int = Field(1, ge=1, le=100)


def _conflict(message: str, code: str) -> Response:
    return openai_error(message, 409, code=code)


def _store_error(exc: Exception) -> Response:
    """A refusal of the store (a served version, nothing to build from) is a 409; missing
    collections, bad names and a busy store keep the search endpoint's answers."""
    known = (CollectionNotFoundError, StoreBusyError, ModelMismatchError)
    if isinstance(exc, RetrievalError) and not isinstance(exc, known):
        code = "nothing_to_rebuild" if isinstance(exc, RebuildError) else "version_conflict"
        return _conflict(str(exc), code)
    return _error_for(exc)


class CollectionVersions:
    """The builds this gateway runs, one per alias at a time, and the store operations."""

    def __init__(self, retriever: Retriever, jobs: VectorStoreJobs) -> None:
        self.retriever = retriever
        self.jobs = jobs
        self._builds: dict[str, dict[str, Any]] = {}  # version name -> its build record
        self._running: dict[str, asyncio.Task[None]] = {}  # alias -> its build
        self._lock = asyncio.Lock()

    def _candidate(self, chunking: ChunkingConfig) -> Retriever:
        cfg = self.retriever.config.model_copy(update={"chunking": chunking})
        return Retriever(cfg, store=self.retriever.store, embedder=self.retriever.embedder)

    def _chunking(self, body: NewVersion) -> ChunkingConfig:
        update = {k: v for k, v in body.model_dump().items() if v is not None}
        merged = self.retriever.config.chunking.model_dump() | update
        return ChunkingConfig.model_validate(merged)  # overlap < chunk is checked there

    async def start(self, alias: str, body: NewVersion) -> dict[str, Any]:
        validate_alias_name(alias)
        chunking = self._chunking(body)
        async with self._lock:
            if alias in self._running:
                raise _Busy(f"a new version of {alias!r} is being built already")
            store = self.retriever.store
            v = await asyncio.to_thread(collection_versions, store, alias)
            baseline, name = v.require_current(), v.next_name()
            rec: dict[str, Any] = {
                "object": "collection.version", "alias": alias, "name": name,
                "baseline": baseline, "status": "in_progress",
                "chunking": chunking.model_dump(include={"chunk_tokens", "overlap_tokens"}),
                "created_at": int(time.time()), "finished_at": None, "files": 0, "chunks": 0,
                "failed_files": [], "missing_sources": [], "error": None,
            }  # fmt: skip
            self._builds[name] = rec
            attrs = await self.jobs.source_attributes(alias)
            task = asyncio.get_running_loop().create_task(
                self._build(alias, rec, chunking, attrs), name=f"rebuild-{alias}"
            )
            self._running[alias] = task
            task.add_done_callback(lambda _t: self._running.pop(alias, None))
        log.info("building %s from %s", name, baseline)
        return rec

    async def _build(
        self, alias: str, rec: dict[str, Any], chunking: ChunkingConfig,
        attrs: dict[str, dict[str, object]],
    ) -> None:  # fmt: skip
        candidate = self._candidate(chunking)
        try:
            built = await asyncio.to_thread(
                build_next_version, alias, serving=self.retriever, candidate=candidate,
                attributes=attrs,
            )  # fmt: skip
            if built.name != rec["name"]:  # the store was changed under us by another process
                raise RetrievalError(f"built {built.name}, expected {rec['name']}")
            r = built.report
            rec.update(status="completed", files=built.files, chunks=r.chunks_total,
                       failed_files=[[p, e] for p, e in r.failed],
                       missing_sources=built.missing)  # fmt: skip
        except asyncio.CancelledError:
            rec.update(status="cancelled")
            raise
        except Exception as exc:
            log.warning("building %s failed: %s", rec["name"], exc)
            code = "nothing_to_rebuild" if isinstance(exc, RebuildError) else "build_failed"
            rec.update(status="failed", error={"code": code, "message": str(exc)})
        finally:
            rec["finished_at"] = int(time.time())

    def record(self, alias: str, name: str) -> dict[str, Any] | None:
        rec = self._builds.get(name)
        return rec if rec is not None and rec["alias"] == alias else None

    def listing(self, alias: str) -> dict[str, Any]:
        store = self.retriever.store
        v = collection_versions(store, alias)
        names = v.versions + ([alias] if v.plain else [])
        if not names:
            raise CollectionNotFoundError(f"no collection or version named {alias!r}")
        return {
            "object": "list", "alias": alias, "serving": v.current,
            "data": [{"name": n, "chunks": store.count(n), "serving": n == v.serving,
                      "build": self._builds.get(n)} for n in names],
        }  # fmt: skip

    def building(self, alias: str, name: str) -> bool:
        rec = self.record(alias, name)
        return rec is not None and rec["status"] == "in_progress"

    async def switch(self, alias: str, target: str) -> dict[str, Any]:
        if self.building(alias, target):
            raise _Busy(f"{target!r} is still being built")
        store = self.retriever.store
        v = await asyncio.to_thread(collection_versions, store, alias)
        previous = v.require_current()
        attrs = await self.jobs.source_attributes(alias)

        def run() -> dict[str, Any]:
            r = self.retriever
            kw: dict[str, Any] = {"baseline": previous, "name": target, "attributes": attrs}
            before = catch_up(r, **kw) if previous != target else ([], [])
            seconds = switch_alias(store, alias, target)
            r.forget_meta(alias)
            after = catch_up(r, **kw, remove=False) if previous not in (target, alias) else ([], [])
            return {"object": "collection.alias", "alias": alias, "collection": target,
                    "previous": previous, "switch_ms": round(seconds * 1000, 3),
                    "caught_up": {"added": before[0] + after[0], "removed": before[1]}}  # fmt: skip

        out = await asyncio.to_thread(run)
        log.info("alias %s -> %s (was %s)", alias, target, previous)
        return out


class _Busy(Exception):
    pass


def make_collection_admin_router(
    versions: CollectionVersions, require_admin: Callable[[Request], None]
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_admin)], tags=["admin"])
    store = versions.retriever.store

    async def guarded(fn: Callable[[], Awaitable[Any]], status: int = 200) -> Response:
        try:
            return _json(await fn(), status)
        except _Busy as exc:
            return _conflict(str(exc), "version_busy")
        except (RetrievalError, ValueError) as exc:
            return _store_error(exc)

    @router.get("/admin/collections/{alias}/versions")
    async def list_versions(alias: str) -> Response:
        return await guarded(lambda: asyncio.to_thread(versions.listing, alias))

    @router.post("/admin/collections/{alias}/versions")
    async def build(alias: str, request: Request) -> Response:
        body = await parse_body(request, NewVersion)
        if isinstance(body, Response):
            return body
        return await guarded(lambda: versions.start(alias, body), 202)

    async def require_version(alias: str, name: str) -> None:
        if name not in (await asyncio.to_thread(collection_versions, store, alias)).versions:
            raise CollectionNotFoundError(f"{alias!r} has no version {name!r}")

    @router.get("/admin/collections/{alias}/versions/{name}")
    async def get_version(alias: str, name: str) -> Response:
        rec = versions.record(alias, name)
        if rec is not None:
            return _json(rec)

        async def existing() -> dict[str, Any]:
            await require_version(alias, name)
            chunks = await asyncio.to_thread(store.count, name)
            return {"object": "collection.version", "alias": alias, "name": name,
                    "status": "completed", "chunks": chunks}  # fmt: skip

        return await guarded(existing)

    @router.delete("/admin/collections/{alias}/versions/{name}")
    async def drop_version(alias: str, name: str) -> Response:
        async def drop() -> dict[str, Any]:
            if versions.building(alias, name):
                raise _Busy(f"{name!r} is still being built")
            await require_version(alias, name)
            await asyncio.to_thread(store.drop_collection, name)
            versions.retriever.forget_meta(name)
            return {"object": "collection.version.deleted", "name": name, "deleted": True}

        return await guarded(drop)

    @router.post("/admin/collections/{alias}/switch")
    async def switch(alias: str, request: Request) -> Response:
        body = await parse_body(request, SwitchTo, empty=None)
        if isinstance(body, Response):
            return body
        return await guarded(lambda: versions.switch(alias, body.collection))

    @router.post("/admin/collections/{alias}/rollback")
    async def rollback(alias: str) -> Response:
        async def run() -> dict[str, Any]:
            was, now = await asyncio.to_thread(rollback_alias, store, alias)
            versions.retriever.forget_meta(alias)
            return {"object": "collection.alias", "alias": alias, "collection": now,
                    "previous": was}  # fmt: skip

        return await guarded(run)

    @router.post("/admin/collections/{name}/snapshot")
    async def snapshot(name: str) -> Response:
        """A consistent copy of a collection (an alias's serving version), written by this
        process, which holds the files, and sent as the response body."""
        folder = Path(tempfile.mkdtemp(prefix="llmops-snapshot-"))

        def run() -> tuple[str, Path]:
            real = store.resolve(name)
            return real, store.snapshot(name, folder / f"{real}.tar.gz")

        try:
            real, path = await asyncio.to_thread(run)
        except (RetrievalError, ValueError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return _store_error(exc)
        except OSError as exc:  # the disk, not the request
            shutil.rmtree(folder, ignore_errors=True)
            return openai_error(f"cannot write the snapshot: {exc}", 500, type="server_error")
        return FileResponse(path, media_type="application/gzip", filename=path.name,
                            headers={"x-llmops-collection": real},
                            background=BackgroundTask(shutil.rmtree, folder, True))  # fmt: skip

    @router.post("/admin/collections/{alias}/prune")
    async def prune(alias: str, request: Request) -> Response:
        body = await parse_body(request, Prune)
        if isinstance(body, Response):
            return body

        async def run() -> dict[str, Any]:
            dropped = await asyncio.to_thread(prune_versions, store, alias, body.keep)
            return {"object": "list", "alias": alias, "dropped": dropped}

        return await guarded(run)

    return router
