"""Vector stores the gateway serves, with the files attached to them and their ingestion.

A vector store is a collection (its id is the collection's name). What the collection itself
cannot say (the store's display name and metadata, each attached file's status, attributes and
batch) is kept in ``<home>/vector_stores/<id>.json``, rewritten atomically on every change.
Each store has one background worker that ingests its attached files in order, in a thread,
while searches go on; a file accepted before a restart is picked up again at start-up, so
nothing accepted is lost. Files ingested by the CLI show up as completed files of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from gateway._files import FileNotFound, FileStore
from gateway._vector_search import file_id as source_file_id
from retrieval import (
    SUPPORTED_SUFFIXES,
    ChunkingConfig,
    CollectionNotFoundError,
    ComparisonFilter,
    IngestReport,
    Retriever,
)

log = logging.getLogger("llmops.gateway.vector_stores")

_STATUSES = ("in_progress", "completed", "failed", "cancelled")
_AUTO = {"type": "auto"}


def _chunking_config(strategy: dict[str, Any] | None) -> ChunkingConfig | None:
    """OpenAI's static strategy as the chunker's settings; None ("auto"): the config's own.
    Chunks stay within the embedding model's limit, so sizes above it are cut to it."""
    if not strategy or strategy.get("type") != "static":
        return None
    st = strategy["static"]
    return ChunkingConfig(chunk_tokens=st["max_chunk_size_tokens"],
                          overlap_tokens=st["chunk_overlap_tokens"])  # fmt: skip


class StoreNotFound(KeyError):
    pass


class VectorStoreJobs:
    def __init__(self, retriever: Retriever, files: FileStore, root: Path) -> None:
        self.retriever = retriever
        self.files = files
        self.root = root
        self._records: dict[str, dict[str, Any]] = {}
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._write_lock = threading.Lock()
        self._written: dict[str, int] = {}
        self._seq = 0

    # --- records ------------------------------------------------------------------------------
    def _path(self, store_id: str) -> Path:
        return self.root / f"{store_id}.json"

    def _load(self, store_id: str) -> dict[str, Any]:
        rec = self._records.get(store_id)
        if rec is None:
            try:
                rec = json.loads(self._path(store_id).read_text())
            except FileNotFoundError:
                rec = {"name": store_id, "created_at": 0, "metadata": None, "files": {},
                       "batches": {}}  # fmt: skip
            self._records[store_id] = rec
        return rec

    async def _save(self, store_id: str) -> None:
        self._seq += 1
        seq, text = self._seq, json.dumps(self._load(store_id))
        await asyncio.to_thread(self._write, store_id, seq, text)

    def _write(self, store_id: str, seq: int, text: str) -> None:
        with self._write_lock:
            if self._written.get(store_id, 0) > seq:
                return  # a newer state is already on disk
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self._path(store_id).with_suffix(f".{seq}.tmp")
            tmp.write_text(text)
            os.replace(tmp, self._path(store_id))
            self._written[store_id] = seq

    # --- vector stores ------------------------------------------------------------------------
    def _exists(self, store_id: str) -> bool:
        try:
            self.retriever.collection_meta(store_id)
        except (CollectionNotFoundError, ValueError):  # no such collection, or not a valid name
            return False
        return True

    async def require(self, store_id: str) -> dict[str, Any]:
        if not await asyncio.to_thread(self._exists, store_id):
            raise StoreNotFound(store_id)
        return self._load(store_id)

    async def create(
        self, name: str | None, metadata: dict[str, str] | None, chunking: dict[str, Any] | None
    ) -> str:
        free = bool(name) and await asyncio.to_thread(_free_name, self, name or "")
        store_id = name if free and name else "vs_" + secrets.token_hex(12)
        await asyncio.to_thread(self.retriever.create_collection, store_id)
        self._records[store_id] = {"name": name or store_id, "created_at": int(time.time()),
                                   "metadata": metadata, "files": {}, "batches": {},
                                   "chunking_strategy": chunking}  # fmt: skip
        await self._save(store_id)
        return store_id

    async def update(
        self, store_id: str, name: str | None, metadata: dict[str, str] | None
    ) -> None:
        rec = await self.require(store_id)
        if name is not None:
            rec["name"] = name
        if metadata is not None:
            rec["metadata"] = metadata
        await self._save(store_id)

    async def ids(self) -> list[str]:
        st = self.retriever.store
        names, aliases = await asyncio.gather(
            asyncio.to_thread(st.list_collections), asyncio.to_thread(st.aliases)
        )
        return sorted(set(names) | set(aliases))

    async def delete(self, store_id: str) -> None:
        await self.require(store_id)
        task = self._workers.pop(store_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._queues.pop(store_id, None)
        await asyncio.to_thread(self.retriever.store.drop_collection, store_id)
        self.retriever.forget_meta(store_id)
        self._records.pop(store_id, None)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(store_id).unlink)

    async def source_attributes(self, store_id: str) -> dict[str, dict[str, object]]:
        """Per source file, the attributes its chunks carry (files attached through the API),
        so a rebuilt version of the store keeps them."""
        if not await asyncio.to_thread(self._exists, store_id):
            return {}
        files = self._load(store_id)["files"]
        return {f["source"]: {"file_id": fid, **f["attributes"]} for fid, f in files.items()
                if f["status"] == "completed"}  # fmt: skip

    async def store_object(self, store_id: str) -> dict[str, Any]:
        rec = await self.require(store_id)
        files = await self.file_objects(store_id)
        counts = {s: sum(1 for f in files if f["status"] == s) for s in _STATUSES}
        return {
            "id": store_id,
            "object": "vector_store",
            "created_at": rec["created_at"],
            "name": rec["name"],
            "usage_bytes": sum(f["usage_bytes"] for f in files),
            "file_counts": {**counts, "total": len(files)},
            "status": "in_progress" if counts["in_progress"] else "completed",
            "expires_after": None,
            "expires_at": None,
            "last_active_at": rec["created_at"],
            "metadata": rec["metadata"],
        }

    # --- files of a store ---------------------------------------------------------------------
    async def file_objects(self, store_id: str) -> list[dict[str, Any]]:
        """API-attached files, then those the CLI ingested (completed), newest first."""
        rec = await self.require(store_id)
        out = [self._file_object(store_id, fid, f) for fid, f in rec["files"].items()]
        known = {f.get("source") for f in rec["files"].values()}
        sources = await asyncio.to_thread(self.retriever.store.sources, store_id)
        for source in sorted(sources):
            if source in known:
                continue
            size = await asyncio.to_thread(_size, source)
            out.append({"id": source_file_id(source), "object": "vector_store.file",
                        "created_at": 0, "vector_store_id": store_id, "status": "completed",
                        "last_error": None, "usage_bytes": size, "attributes": {},
                        "chunking_strategy": _AUTO})  # fmt: skip
        return sorted(out, key=lambda o: o["created_at"], reverse=True)

    def _file_object(self, store_id: str, file_id: str, f: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "vector_store.file",
            "created_at": f["created_at"],
            "vector_store_id": store_id,
            "status": f["status"],
            "last_error": f["last_error"],
            "usage_bytes": f["usage_bytes"] if f["status"] == "completed" else 0,
            "attributes": f["attributes"],
            "chunking_strategy": f.get("chunking_strategy") or _AUTO,
        }

    async def file_object(self, store_id: str, file_id: str) -> dict[str, Any]:
        for f in await self.file_objects(store_id):
            if f["id"] == file_id:
                return f
        raise FileNotFound(file_id)

    async def attach(
        self,
        store_id: str,
        file_id: str,
        attributes: dict[str, Any],
        batch_id: str | None = None,
        chunking: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Accept a file for ingestion (status in_progress) and queue it; re-attaching a file
        ingests it again with the new attributes and the chunking it had. Without a chunking
        strategy of its own the file takes the store's (else the retrieval config's: "auto")."""
        rec = await self.require(store_id)
        before = rec["files"].get(file_id) or {}
        chunking = chunking or before.get("chunking_strategy") or rec.get("chunking_strategy")
        obj = await asyncio.to_thread(self.files.get, file_id)
        path = await asyncio.to_thread(self.files.path, file_id)
        f = {"created_at": int(time.time()), "status": "in_progress", "last_error": None,
             "usage_bytes": obj["bytes"], "attributes": attributes, "batch_id": batch_id,
             "source": str(path.resolve()), "chunking_strategy": chunking}  # fmt: skip
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            f["status"] = "failed"
            f["last_error"] = {"code": "unsupported_file", "message": (
                f"{obj['filename']}: no reader for {path.suffix or 'files without a suffix'}; "
                f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")}  # fmt: skip
        rec["files"][file_id] = f
        await self._save(store_id)
        if f["status"] == "in_progress":
            self._queue(store_id).put_nowait(file_id)
        return self._file_object(store_id, file_id, f)

    async def detach(self, store_id: str, file_id: str) -> None:
        """Remove the file's chunks from the store (the uploaded file itself stays)."""
        rec = await self.require(store_id)
        f = rec["files"].pop(file_id, None)
        if f is not None:
            source = f["source"]
        else:
            sources = await asyncio.to_thread(self.retriever.store.sources, store_id)
            match = [s for s in sources if source_file_id(s) == file_id]
            if not match:
                raise FileNotFound(file_id)
            source = match[0]
        await self._drop_chunks(store_id, source)
        await self._save(store_id)

    async def _drop_chunks(self, store_id: str, source: str) -> None:
        flt = ComparisonFilter(type="eq", key="source", value=source)
        await asyncio.to_thread(self.retriever.store.delete, store_id, flt)

    # --- batches ------------------------------------------------------------------------------
    async def create_batch(
        self,
        store_id: str,
        file_ids: list[str],
        attributes: dict[str, Any],
        chunking: dict[str, Any] | None = None,
    ) -> str:
        rec = await self.require(store_id)
        for fid in file_ids:  # all known before any is accepted
            await asyncio.to_thread(self.files.get, fid)
        batch_id = "vsfb_" + secrets.token_hex(12)
        rec["batches"][batch_id] = {"created_at": int(time.time()), "file_ids": file_ids,
                                    "cancelled": False}  # fmt: skip
        for fid in file_ids:
            await self.attach(store_id, fid, attributes, batch_id, chunking)
        return batch_id

    async def batch_object(self, store_id: str, batch_id: str) -> dict[str, Any]:
        rec = await self.require(store_id)
        b = rec["batches"].get(batch_id)
        if b is None:
            raise FileNotFound(batch_id)
        files = self.batch_files(rec, batch_id)
        counts = {s: sum(1 for f in files.values() if f["status"] == s) for s in _STATUSES}
        status = ("cancelled" if b["cancelled"] else "in_progress") if counts["in_progress"] \
            else ("cancelled" if b["cancelled"] else "completed")  # fmt: skip
        return {"id": batch_id, "object": "vector_store.files_batch",
                "created_at": b["created_at"], "vector_store_id": store_id, "status": status,
                "file_counts": {**counts, "total": len(b["file_ids"])}}  # fmt: skip

    def batch_files(self, rec: dict[str, Any], batch_id: str) -> dict[str, dict[str, Any]]:
        return {fid: f for fid, f in rec["files"].items() if f.get("batch_id") == batch_id}

    async def cancel_batch(self, store_id: str, batch_id: str) -> None:
        rec = await self.require(store_id)
        if batch_id not in rec["batches"]:
            raise FileNotFound(batch_id)
        rec["batches"][batch_id]["cancelled"] = True
        for f in self.batch_files(rec, batch_id).values():
            if f["status"] == "in_progress":  # the one being ingested now finishes
                f["status"] = "cancelled"
        await self._save(store_id)

    # --- the workers --------------------------------------------------------------------------
    def _queue(self, store_id: str) -> asyncio.Queue[str]:
        q = self._queues.get(store_id)
        if q is None:
            q = self._queues[store_id] = asyncio.Queue()
            self._workers[store_id] = asyncio.get_running_loop().create_task(
                self._work(store_id, q), name=f"ingest-{store_id}"
            )
        return q

    async def _work(self, store_id: str, q: asyncio.Queue[str]) -> None:
        while True:
            file_id = await q.get()
            f = self._load(store_id)["files"].get(file_id)
            if f is None or f["status"] != "in_progress":
                continue  # detached or cancelled while queued
            try:
                attrs = {"file_id": file_id, **f["attributes"]}
                report = await asyncio.to_thread(
                    self._ingest, store_id, f["source"], attrs, f.get("chunking_strategy")
                )
                problems = report.failed + report.skipped
                if problems:
                    f["status"] = "failed"
                    f["last_error"] = {"code": "invalid_file", "message": problems[0][1]}
                elif f["status"] == "in_progress":
                    f["status"] = "completed"
                if self._load(store_id)["files"].get(file_id) is not f:
                    await self._drop_chunks(store_id, f["source"])  # detached meanwhile
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("ingesting %s into %s failed", file_id, store_id)
                f["status"] = "failed"
                f["last_error"] = {"code": "server_error", "message": str(exc)}
            await self._save(store_id)

    def _ingest(
        self, store_id: str, source: str, attrs: dict[str, Any], strategy: dict[str, Any] | None
    ) -> IngestReport:
        """Without a static strategy, a rebuilt version's recorded chunking, else the
        config's: files added later are cut like the rest of the version."""
        chunking = _chunking_config(strategy)
        if chunking is None and self._exists(store_id):
            chunking = self.retriever.collection_meta(store_id).chunking
        return self.retriever.ingest([source], store_id, attributes=attrs, chunking=chunking)

    async def resume(self) -> None:
        """Queue again the files accepted before a restart and not finished."""
        if not self.root.is_dir():
            return
        for p in sorted(self.root.glob("*.json")):
            store_id = p.stem
            try:
                rec = self._load(store_id)
            except ValueError:
                log.error("unreadable vector store record %s", p)
                continue
            pending = [fid for fid, f in rec["files"].items() if f["status"] == "in_progress"]
            for fid in sorted(pending, key=lambda x: rec["files"][x]["created_at"]):
                self._queue(store_id).put_nowait(fid)

    async def close(self) -> None:
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(BaseException):
                await task
        self._workers.clear()
        self._queues.clear()


def _size(source: str) -> int:
    try:
        return os.path.getsize(source)
    except OSError:
        return 0


def _free_name(jobs: VectorStoreJobs, name: str) -> bool:
    from retrieval import validate_collection_name

    try:
        validate_collection_name(name)
    except ValueError:
        return False
    return not jobs._exists(name)
