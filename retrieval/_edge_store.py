"""Embedded backend on Qdrant Edge (`qdrant_edge`): Qdrant's Rust engine in-process, nothing to
run. One shard folder per collection under the data directory, with a `meta.json` beside it.
One process per collection folder: a process claims a collection (an `flock` on
`.locks/NAME.lock`) before the engine opens its files, and a second one gets a clear
`StoreBusyError`. The claim comes first because the engine's own lock does not protect: a second
process that opens a collection already open elsewhere rewrites part of its files before its
open fails on that lock, and the first process's next flush then fails on a truncated journal.

Aliases (`kb` -> `kb@v3`) live in one `aliases.json` at the root, replaced atomically
(`os.replace`) and re-read when its inode or mtime changes, so every process sees a switch on
its next call; each call resolves its name once, and shards are keyed by the real name, so a
search that resolved the old version finishes on it."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import tarfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from ._config import validate_alias_name, validate_collection_name
from ._errors import CollectionNotFoundError, RetrievalError, StoreBusyError
from ._filters import ComparisonFilter, Filter
from ._store import (
    DENSE,
    INDEXED_FIELDS,
    SPARSE,
    CollectionMeta,
    PointData,
    QueryPlan,
    StoredHit,
    refuse_served_drop,
)

_BIG = 10**9
_ALIASES = "aliases.json"
_MANIFEST = "llmops-snapshot.json"


def _condition(f: ComparisonFilter) -> tuple[str, Any]:
    """('must' | 'must_not', condition) for one comparison."""
    v = f.value
    if f.type in ("eq", "ne"):
        cond = qe.FieldCondition(f.key, match=qe.MatchValue(v))  # type: ignore[arg-type]
        return ("must" if f.type == "eq" else "must_not", cond)
    if f.type in ("in", "nin"):
        cond = qe.FieldCondition(f.key, match=qe.MatchAny(v))  # type: ignore[arg-type]
        return ("must" if f.type == "in" else "must_not", cond)
    rng = qe.RangeFloat(**{f.type: float(v)})  # type: ignore[arg-type]
    return ("must", qe.FieldCondition(f.key, range=rng))


def to_edge_filter(f: Filter | None) -> qe.Filter | None:
    if f is None:
        return None
    if isinstance(f, ComparisonFilter):
        kind, cond = _condition(f)
        return qe.Filter(must=[cond]) if kind == "must" else qe.Filter(must_not=[cond])
    subs = [to_edge_filter(s) for s in f.filters]
    if f.type == "and":
        return qe.Filter(must=subs)  # type: ignore[arg-type]
    return qe.Filter(should=subs)  # type: ignore[arg-type]


def _sparse(s: Any) -> qe.SparseVector:
    return qe.SparseVector(s.indices, s.values)


class EdgeStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._shards: dict[str, qe.EdgeShard] = {}
        self._claims: dict[str, int] = {}  # collection -> the fd holding its flock
        self._lock = threading.Lock()
        self._writing = threading.RLock()  # writes wait while a snapshot copies the files
        self._aliases: dict[str, str] = {}
        self._aliases_stamp: tuple[int, int] | None = None

    # --- aliases ------------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        p = self._root / _ALIASES
        try:
            st = p.stat()
            stamp: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp != self._aliases_stamp:
            try:
                data = json.loads(p.read_text()) if stamp else {}
            except FileNotFoundError:
                data = {}
            except (OSError, ValueError) as exc:
                raise RetrievalError(f"cannot read the alias file {p}: {exc}") from exc
            self._aliases, self._aliases_stamp = dict(data), stamp
        return self._aliases

    def resolve(self, name: str) -> str:
        validate_collection_name(name)
        return self.aliases().get(name, name)

    def _write_aliases(self, table: dict[str, str]) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        tmp = self._root / f"{_ALIASES}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(dict(sorted(table.items())), indent=2))
        os.replace(tmp, self._root / _ALIASES)
        self._aliases_stamp = None  # re-read (and re-stamp) on the next call

    def set_alias(self, alias: str, collection: str) -> None:
        validate_alias_name(alias)
        with self._lock:
            table = dict(self.aliases())
            if collection in table:
                raise RetrievalError(f"{collection!r} is itself an alias; name a collection")
            if self.collection_meta(collection) is None:
                raise CollectionNotFoundError(f"collection {collection!r} does not exist")
            if alias not in table and (self._root / alias / "meta.json").exists():
                raise RetrievalError(f"{alias!r} is a collection; an alias cannot take its name")
            table[alias] = collection
            self._write_aliases(table)

    def drop_alias(self, alias: str) -> None:
        with self._lock:
            table = dict(self.aliases())
            if table.pop(alias, None) is None:
                raise CollectionNotFoundError(f"alias {alias!r} does not exist")
            self._write_aliases(table)

    # --- collections --------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self._root / self.resolve(name)

    def _shard(self, name: str) -> qe.EdgeShard:
        name = self.resolve(name)
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                if self.collection_meta(name) is None:
                    raise CollectionNotFoundError(f"collection {name!r} does not exist")
                shard = self._open(name, None)
            return shard

    def _claim(self, name: str) -> None:
        """This process's claim on a collection's files, held until it closes or drops it;
        `flock` conflicts across processes and across open files of one process."""
        if name in self._claims:
            return
        locks = self._root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusyError(
                f"collection {name!r} in {self._root} is open in another process "
                "(a running gateway or ingest); stop it or use a Qdrant server backend"
            ) from None
        self._claims[name] = fd

    def _release(self, name: str) -> None:
        fd = self._claims.pop(name, None)
        if fd is not None:
            os.close(fd)

    def _open(self, name: str, config: qe.EdgeConfig | None) -> qe.EdgeShard:
        path = str(self._dir(name) / "shard")
        self._claim(name)
        try:
            shard = qe.EdgeShard.create(path, config) if config else qe.EdgeShard.load(path)
        except Exception as exc:
            self._release(name)
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreBusyError(
                    f"collection {name!r} at {path} is open in another process "
                    "(a running gateway or ingest); stop it or use a Qdrant server backend"
                ) from exc
            raise RetrievalError(f"cannot open collection {name!r}: {exc}") from exc
        self._shards[name] = shard
        return shard

    def collection_meta(self, name: str) -> CollectionMeta | None:
        p = self._dir(name) / "meta.json"
        if not p.exists():
            return None
        return CollectionMeta.model_validate_json(p.read_text())

    def _write_meta(self, name: str, meta: CollectionMeta) -> None:
        d = self._dir(name)
        tmp = d / "meta.json.tmp"
        tmp.write_text(json.dumps(meta.model_dump(mode="json"), indent=2))
        os.replace(tmp, d / "meta.json")

    def create_collection(self, name: str, meta: CollectionMeta) -> None:
        if self.resolve(name) != name:
            raise RetrievalError(f"{name!r} is an alias; a collection cannot take its name")
        d = self._dir(name)
        with self._lock:
            if (d / "meta.json").exists():
                raise RetrievalError(f"collection {name!r} already exists")
            if d.exists():  # half-created earlier: no meta means no usable data
                self._claim(name)  # unless another process is creating it right now
                shutil.rmtree(d)
            d.mkdir(parents=True)
            cfg = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=meta.dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            shard = self._open(name, cfg)
            for field in INDEXED_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                )
            shard.flush()
            self._write_meta(name, meta)

    def update_meta(self, name: str, meta: CollectionMeta) -> None:
        if self.collection_meta(name) is None:
            raise CollectionNotFoundError(f"collection {name!r} does not exist")
        self._write_meta(name, meta)

    def list_collections(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.parent.name for p in self._root.glob("*/meta.json"))

    def drop_collection(self, name: str) -> None:
        refuse_served_drop(self.aliases(), name)
        validate_collection_name(name)
        with self._lock:
            self._claim(name)  # never delete files another process has open
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._dir(name), ignore_errors=True)
            self._release(name)

    def upsert(self, name: str, points: Sequence[PointData]) -> None:
        if not points:
            return
        pts = [
            qe.Point(p.id, {DENSE: p.dense, SPARSE: _sparse(p.sparse)}, p.payload) for p in points
        ]
        with self._writing:
            self._shard(name).update(qe.UpdateOperation.upsert_points(pts))

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        recs = self._shard(name).retrieve(list(ids), with_payload=False, with_vector=False)
        return {str(r.id) for r in recs}

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        if ids:
            with self._writing:
                self._shard(name).update(qe.UpdateOperation.set_payload(list(ids), payload))

    def count(self, name: str, flt: Filter | None = None) -> int:
        return self._shard(name).count(qe.CountRequest(exact=True, filter=to_edge_filter(flt)))

    def delete(self, name: str, flt: Filter) -> None:
        ef = to_edge_filter(flt)
        assert ef is not None
        with self._writing:
            self._shard(name).update(qe.UpdateOperation.delete_points_by_filter(ef))

    def sources(self, name: str) -> dict[str, int]:
        resp = self._shard(name).facet(qe.FacetRequest("source", limit=_BIG, exact=True))
        return {str(h.value): h.count for h in resp.hits if h.count > 0}

    def query(self, name: str, plan: QueryPlan) -> list[StoredHit]:
        shard = self._shard(name)
        flt = to_edge_filter(plan.filter)
        dense = qe.Query.Nearest(plan.dense, using=DENSE) if plan.dense is not None else None
        sparse = (
            qe.Query.Nearest(_sparse(plan.sparse), using=SPARSE)
            if plan.sparse is not None and plan.sparse.indices
            else None
        )
        if plan.mode in ("rrf", "dbsf") and dense is not None and sparse is not None:
            fusion: Any = (
                qe.Fusion.Rrf(k=plan.rrf_k, weights=list(plan.weights) if plan.weights else None)
                if plan.mode == "rrf"
                else qe.Fusion.Dbsf()
            )
            req = qe.QueryRequest(
                limit=plan.limit,
                prefetches=[
                    qe.Prefetch(limit=plan.prefetch_limit, query=dense, filter=flt),
                    qe.Prefetch(limit=plan.prefetch_limit, query=sparse, filter=flt),
                ],
                query=fusion,
                filter=flt,
                with_payload=True,
            )
        else:
            single = sparse if plan.mode == "sparse" else (dense or sparse)
            if single is None:
                return []
            req = qe.QueryRequest(limit=plan.limit, query=single, filter=flt, with_payload=True)
        return [
            StoredHit(str(p.id), float(p.score), dict(p.payload or {})) for p in shard.query(req)
        ]

    def optimize(self, name: str) -> None:
        shard = self._shard(name)
        with self._writing:
            shard.flush()
            shard.optimize()

    # --- snapshots ----------------------------------------------------------------------------
    def snapshot(self, name: str, dest: Path) -> Path:
        """A tar of the collection's folder, flushed first, with writes held off meanwhile
        (searches go on); restorable on any machine with the same engine version."""
        real = self.resolve(name)
        if self.collection_meta(real) is None:
            raise CollectionNotFoundError(f"collection {name!r} does not exist")
        shard = self._shard(real)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        manifest = json.dumps({"collection": real, "backend": "edge", "created": time.time()})
        with self._writing:
            shard.flush()
            with tarfile.open(tmp, "w:gz") as tar:
                info = tarfile.TarInfo(_MANIFEST)
                data = manifest.encode()
                info.size, info.mtime = len(data), int(time.time())
                tar.addfile(info, io.BytesIO(data))
                tar.add(self._root / real, arcname="collection")
        os.replace(tmp, dest)
        return dest

    def restore(self, snapshot: Path, name: str) -> None:
        validate_collection_name(name)
        if self.resolve(name) != name or self.collection_meta(name) is not None:
            raise RetrievalError(f"{name!r} already exists: restore under another name")
        try:
            tar = tarfile.open(snapshot, "r:*")
        except (OSError, tarfile.TarError) as exc:
            raise RetrievalError(f"{snapshot} is not a collection snapshot: {exc}") from exc
        staging = self._root / f".restore-{name}-{os.getpid()}"
        with tar:
            names = tar.getnames()
            if _MANIFEST not in names or "collection/meta.json" not in names:
                raise RetrievalError(f"{snapshot} is not a snapshot of the embedded engine")
            shutil.rmtree(staging, ignore_errors=True)
            tar.extractall(staging, filter="data")  # refuses absolute paths and links out
        try:
            CollectionMeta.model_validate_json((staging / "collection" / "meta.json").read_text())
            with self._lock:
                if (self._root / name).exists():
                    raise RetrievalError(f"{name!r} already exists: restore under another name")
                os.replace(staging / "collection", self._root / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            for name in list(self._claims):
                self._release(name)
