"""Ingest: scan roots, load and chunk files, embed what the store lacks, upsert, replace or
prune stale chunks. The store itself is the manifest: each chunk carries its file's
fingerprint and chunk count, so "unchanged", "half-written by a killed run" and "changed" are
all read back from the store, whichever backend, with no side file to drift out of date."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from ._chunking import Chunk, chunk_document
from ._config import DEFAULT_MODE, RetrievalConfig
from ._embedders import Embedder
from ._errors import LoaderError, ModelMismatchError
from ._filters import ComparisonFilter, CompoundFilter
from ._loaders import LOADERS, load_document
from ._sparse import Bm25Encoder, mean_length
from ._store import CollectionMeta, PointData, Store

_NAMESPACE = uuid.UUID("6f1c2a52-8d0e-4d53-9a4b-3c1f4b8e2d71")
RESERVED_PAYLOAD = frozenset({
    "source", "path", "filename", "title", "doc_type", "tags", "fingerprint", "chunk_count",
    "text", "headings", "heading", "position", "page",
})  # fmt: skip

FileStatus = Literal["added", "updated", "unchanged", "failed"]


@dataclass(slots=True)
class IngestReport:
    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    ignored: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds > 0 else 0.0


class IngestProgress(Protocol):
    """What the CLI's progress bar implements; the library itself prints nothing."""

    def planned(self, files: int, chunks_to_embed: int) -> None: ...

    def advance(self, chunks: int) -> None: ...

    def file_done(self, path: str, status: FileStatus, chunks: int, reason: str = "") -> None: ...


@dataclass(slots=True)
class _Job:
    source: str
    fingerprint: str
    chunks: list[Chunk]
    ids: list[str]
    payload: dict[str, object]
    existing: set[str]
    replaces: bool
    remaining: int


def chunk_id(source: str, chunk: Chunk) -> str:
    """Deterministic from content: same file, same place, same text -> same point id."""
    key = json.dumps([source, chunk.position, chunk.headings, chunk.page, chunk.text])
    return str(uuid.uuid5(_NAMESPACE, key))


def scan(paths: Iterable[str | Path]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]], int]:
    """(file, root) pairs to ingest, (path, reason) skipped, count of unsupported files.
    Files must resolve inside their root: symlinks that lead out of it are refused."""
    found: dict[Path, Path] = {}
    skipped: list[tuple[str, str]] = []
    ignored = 0
    for raw in paths:
        given = Path(raw).expanduser()
        if not given.exists():
            skipped.append((str(raw), "does not exist (or is a broken symlink)"))
            continue
        root = given.resolve()
        if root.is_file():
            found.setdefault(root, root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            for d in list(dirnames):
                if d.startswith(".") or (here / d).is_symlink():
                    if (here / d).is_symlink() and not (here / d).resolve().is_relative_to(root):
                        skipped.append((str(here / d), f"symlink leads outside {root}"))
                    dirnames.remove(d)
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                fp = here / name
                if fp.suffix.lower() not in LOADERS:
                    ignored += 1
                    continue
                real = fp.resolve()
                if not real.is_relative_to(root):
                    skipped.append((str(fp), f"symlink leads outside {root}"))
                elif not real.is_file():
                    skipped.append((str(fp), "not a regular file"))
                else:
                    found.setdefault(real, root)
    return list(found.items()), skipped, ignored


def same_source(source: str) -> ComparisonFilter:
    return ComparisonFilter(type="eq", key="source", value=source)


def _with_fingerprint(source: str, fingerprint: str, op: Literal["eq", "ne"]) -> CompoundFilter:
    return CompoundFilter(
        type="and",
        filters=[
            same_source(source),
            ComparisonFilter(type=op, key="fingerprint", value=fingerprint),
        ],
    )


def _stale(source: str, fingerprint: str) -> CompoundFilter:
    """The file's chunks from another version of it (or other chunking settings)."""
    return _with_fingerprint(source, fingerprint, "ne")


class Ingestor:
    """One ingest run's collaborators; `run` may be called many times."""

    def __init__(self, store: Store, embedder: Embedder, config: RetrievalConfig) -> None:
        self._store = store
        self._embedder = embedder
        self._config = config

    def ensure_collection(self, collection: str) -> CollectionMeta:
        meta = self._store.collection_meta(collection)
        if meta is None:
            s = self._config.search
            meta = CollectionMeta(
                model=self._embedder.name,
                dim=self._embedder.dim,
                sparse=self._config.sparse,
                mode=s.mode or DEFAULT_MODE,
                rrf_k=s.rrf_k,
                weights=s.weights,
                alpha=s.alpha,
            )
            self._store.create_collection(collection, meta)
            return meta
        check_model(collection, meta, self._embedder)
        return meta

    def run(
        self,
        paths: Sequence[str | Path],
        collection: str,
        *,
        prune: bool = False,
        tags: Sequence[str] = (),
        progress: IngestProgress | None = None,
        attributes: Mapping[str, object] | None = None,
    ) -> IngestReport:
        """``attributes`` are stored on every chunk of these files, as filterable payload keys
        (OpenAI's vector store file attributes); they cannot take the names ingest writes."""
        clash = sorted(set(attributes or ()) & RESERVED_PAYLOAD)
        if clash:
            raise ValueError(f"attribute names reserved for the chunks' own fields: {clash}")
        started = time.perf_counter()
        report = IngestReport(collection)
        meta = self.ensure_collection(collection)
        files, report.skipped, report.ignored = scan(paths)
        jobs = self._plan(collection, files, sorted(set(tags)), dict(attributes or {}), report,
                          progress)  # fmt: skip
        todo = [
            (job, i) for job in jobs for i, cid in enumerate(job.ids) if cid not in job.existing
        ]
        if meta.sparse.avg_len is None and todo:
            # The collection's first chunks set BM25's length norm; it is recorded, so every
            # later ingest encodes with the same one.
            texts = [job.chunks[i].embed_text for job, i in todo]
            avg = round(mean_length(meta.sparse, texts), 2)
            meta = meta.model_copy(
                update={"sparse": meta.sparse.model_copy(update={"avg_len": avg})}
            )
            self._store.update_meta(collection, meta)
        sparse = Bm25Encoder(meta.sparse)
        if progress:
            progress.planned(len(jobs), len(todo))
        for job in [j for j in jobs if j.remaining == 0]:
            self._finish(collection, job, report, progress)
        step = self._config.embedder.batch_size * 8  # encode() sorts by length within a call
        for start in range(0, len(todo), step):
            window = todo[start : start + step]
            texts = [job.chunks[i].embed_text for job, i in window]
            t0 = time.perf_counter()
            dense = self._embedder.embed_documents(texts)
            report.embed_seconds += time.perf_counter() - t0
            sparse_vecs = sparse.documents(texts)
            points = [
                PointData(job.ids[i], dense[k].tolist(), sparse_vecs[k], self._payload(job, i))
                for k, (job, i) in enumerate(window)
            ]
            self._store.upsert(collection, points)
            report.chunks_embedded += len(window)
            if progress:
                progress.advance(len(window))
            done: list[_Job] = []
            for job, _ in window:
                job.remaining -= 1
                if job.remaining == 0:
                    done.append(job)
            for job in done:
                self._finish(collection, job, report, progress)
        if prune:
            self._prune(collection, files, paths, report)
        if report.chunks_embedded or report.pruned or report.updated:
            self._store.optimize(collection)
        report.seconds = time.perf_counter() - started
        return report

    def _plan(
        self,
        collection: str,
        files: list[tuple[Path, Path]],
        tags: list[str],
        attributes: dict[str, object],
        report: IngestReport,
        progress: IngestProgress | None,
    ) -> list[_Job]:
        ch = self._config.chunking
        budget = min(ch.chunk_tokens or self._embedder.max_tokens, self._embedder.max_tokens)
        settings = json.dumps([budget, ch.overlap_tokens, tags, attributes], sort_keys=True,
                              default=str).encode()  # fmt: skip
        jobs: list[_Job] = []
        for path, root in files:
            source = str(path)
            try:
                size = path.stat().st_size
                if size > ch.max_file_mb * 1024 * 1024:
                    raise LoaderError(f"larger than {ch.max_file_mb} MB")
                data = path.read_bytes()
                doc = load_document(path, data)
                chunks = chunk_document(doc, self._embedder.count_tokens, budget, ch.overlap_tokens)
            except LoaderError as exc:
                self._failed(report, progress, source, str(exc))
                continue
            except OSError as exc:
                self._failed(report, progress, source, f"unreadable: {exc}")
                continue
            except Exception as exc:  # a parser bug on one odd file must not abort the run
                self._failed(report, progress, source, f"cannot parse: {type(exc).__name__}: {exc}")
                continue
            fingerprint = hashlib.sha256(data + b"\0" + settings).hexdigest()
            n = len(chunks)
            report.chunks_total += n
            stored = self._store.count(collection, same_source(source))
            current = (
                self._store.count(collection, _with_fingerprint(source, fingerprint, "eq"))
                if stored == n
                else -1
            )
            if stored == n and current == n:
                report.unchanged.append(source)
                if progress:
                    progress.file_done(source, "unchanged", n)
                continue
            ids = [chunk_id(source, c) for c in chunks]
            existing = self._store.existing_ids(collection, ids) if stored else set()
            # chunks of an older version present: "updated"; only ours (a run was killed): "added"
            replaces = stored > 0 and self._store.count(collection, _stale(source, fingerprint)) > 0
            rel = path.relative_to(root).as_posix() if path != root else path.name
            payload: dict[str, object] = {
                "source": source,
                "path": rel,
                "filename": path.name,
                "title": doc.title,
                "doc_type": doc.doc_type,
                "tags": tags,
                "fingerprint": fingerprint,
                "chunk_count": n,
                **attributes,
            }
            jobs.append(
                _Job(
                    source,
                    fingerprint,
                    chunks,
                    ids,
                    payload,
                    existing,
                    replaces,
                    n - len(existing),
                )
            )
        return jobs

    @staticmethod
    def _failed(
        report: IngestReport, progress: IngestProgress | None, source: str, reason: str
    ) -> None:
        report.failed.append((source, reason))
        if progress:
            progress.file_done(source, "failed", 0, reason)

    @staticmethod
    def _payload(job: _Job, i: int) -> dict[str, object]:
        c = job.chunks[i]
        return {
            **job.payload,
            "text": c.text,
            "headings": c.headings,
            "heading": " > ".join(c.headings),
            "position": c.position,
            "page": c.page,
        }

    def _finish(
        self, collection: str, job: _Job, report: IngestReport, progress: IngestProgress | None
    ) -> None:
        """All of the file's chunks are stored: claim reused ones, then drop the old version."""
        if job.existing:
            self._store.set_payload(
                collection,
                sorted(job.existing),
                {
                    k: v
                    for k, v in job.payload.items()
                    if k not in ("source", "path", "filename", "title", "doc_type")
                },
            )
            report.chunks_reused += len(job.existing)
        self._store.delete(collection, _stale(job.source, job.fingerprint))
        status: FileStatus = "updated" if job.replaces else "added"
        (report.updated if job.replaces else report.added).append(job.source)
        job.chunks = []
        if progress:
            progress.file_done(job.source, status, len(job.ids))

    def _prune(
        self,
        collection: str,
        files: list[tuple[Path, Path]],
        paths: Sequence[str | Path],
        report: IngestReport,
    ) -> None:
        """Remove chunks of files under the given roots that no longer exist on disk."""
        roots = [Path(p).expanduser().resolve() for p in paths]
        seen = {str(f) for f, _ in files}
        for source in sorted(self._store.sources(collection)):
            sp = Path(source)
            if source in seen or sp.exists():
                continue
            if any(sp == r or sp.is_relative_to(r) for r in roots):
                self._store.delete(collection, same_source(source))
                report.pruned.append(source)


def check_model(collection: str, meta: CollectionMeta, embedder: Embedder) -> None:
    """Vectors from different models are not comparable: refuse instead of returning noise."""
    if meta.model != embedder.name or meta.dim != embedder.dim:
        raise ModelMismatchError(
            f"collection {collection!r} was built with embedding model {meta.model!r} "
            f"({meta.dim} dims); the configured model is {embedder.name!r} ({embedder.dim} dims). "
            "Configure the same model, or re-ingest into a new collection."
        )
