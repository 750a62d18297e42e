"""Server backend through `qdrant-client`: a Qdrant server or cluster (URL, API key, shards,
replication), or qdrant-client's local mode (`path` / ':memory:'), which speaks the same API
and is how the tests exercise this code without a server binary.

Aliases are Qdrant's own: a switch is one `update_collection_aliases` call (delete and create
in one atomic operation). Names are resolved through a table cached for ``_ALIAS_TTL_S``, so a
search is not two round trips; a switch made elsewhere is seen within that time, and until
then searches go to the old version, which a rebuild keeps."""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any
from urllib.parse import quote

from qdrant_client import QdrantClient, models

from ._config import StoreConfig, validate_alias_name, validate_collection_name
from ._errors import CollectionNotFoundError, RetrievalError
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

_META_KEY = "llmops"
_BIG = 10**9
_ALIAS_TTL_S = 1.0

MIN_SERVER_VERSION = (1, 17, 0)
"""The oldest Qdrant server this backend talks to: collection `metadata` and the parametrised
`Rrf(k=...)` fusion need 1.16, the `weights` of weighted RRF (sent whenever a search or the
collection asks for them) need 1.17. An older server rejects or silently ignores them."""

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def _fmt(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def parse_server_version(text: str | None) -> tuple[int, int, int] | None:
    """`1.17.1` (also `v1.17.1`, `1.18.0-dev`) as a tuple; None when it is not a version."""
    m = _VERSION_RE.match((text or "").strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def check_server_version(version: str | None, url: str) -> None:
    """Refuse a server older than MIN_SERVER_VERSION (or one that names no version)."""
    parsed = parse_server_version(version)
    need = _fmt(MIN_SERVER_VERSION)
    if parsed is None:
        raise RetrievalError(
            f"Qdrant at {url} reports no usable version ({version!r}); llmops needs a Qdrant "
            f"server >= {need}"
        )
    if parsed < MIN_SERVER_VERSION:
        raise RetrievalError(
            f"Qdrant at {url} is version {version}; llmops needs a Qdrant server >= {need} "
            "(collection metadata, parametrised and weighted RRF): upgrade the server"
        )
    try:
        client = parse_server_version(_dist_version("qdrant-client"))
    except PackageNotFoundError:  # pragma: no cover - qdrant-client is imported above
        client = None
    # qdrant-client's own policy: same major, at most one minor apart (its check is turned off
    # below because it runs in a thread and only warns; this one runs before any request).
    if client is not None and (parsed[0] != client[0] or abs(parsed[1] - client[1]) > 1):
        warnings.warn(
            f"Qdrant server {version} at {url} is more than one minor version away from "
            f"qdrant-client {_fmt(client)}; pin the server to the client's minor line",
            UserWarning,
            stacklevel=3,
        )


def _condition(f: ComparisonFilter) -> tuple[str, models.FieldCondition]:
    v: Any = f.value
    if f.type in ("eq", "ne"):
        cond = models.FieldCondition(key=f.key, match=models.MatchValue(value=v))
        return ("must" if f.type == "eq" else "must_not", cond)
    if f.type in ("in", "nin"):
        cond = models.FieldCondition(key=f.key, match=models.MatchAny(any=v))
        return ("must" if f.type == "in" else "must_not", cond)
    rng = models.Range(**{f.type: float(v)})
    return ("must", models.FieldCondition(key=f.key, range=rng))


def to_qdrant_filter(f: Filter | None) -> models.Filter | None:
    if f is None:
        return None
    if isinstance(f, ComparisonFilter):
        kind, cond = _condition(f)
        return models.Filter(must=[cond]) if kind == "must" else models.Filter(must_not=[cond])
    subs: list[Any] = [to_qdrant_filter(s) for s in f.filters]
    return models.Filter(must=subs) if f.type == "and" else models.Filter(should=subs)


def _sparse(s: Any) -> models.SparseVector:
    return models.SparseVector(indices=list(s.indices), values=list(s.values))


class QdrantServerStore:
    def __init__(self, config: StoreConfig) -> None:
        self._config = config
        key = config.api_key.get_secret_value() if config.api_key else None
        if key is None and config.api_key_env:
            key = os.environ.get(config.api_key_env)
        self._api_key = key
        if config.url:
            self._client = QdrantClient(
                url=config.url,
                api_key=key,
                timeout=config.timeout_s,
                prefer_grpc=config.prefer_grpc,
                check_compatibility=False,
            )
            try:
                self._check_server(config.url)
            except BaseException:
                self._client.close()
                raise
        elif config.path and config.path != ":memory:":
            self._client = QdrantClient(path=config.path)
        else:
            self._client = QdrantClient(location=":memory:")
        self._aliases: dict[str, str] = {}
        self._aliases_at = -_ALIAS_TTL_S
        self._alias_lock = threading.Lock()

    def _check_server(self, url: str) -> None:
        """A Qdrant server (not local mode): read its version (`GET /`, or gRPC health check
        with `prefer_grpc`) and refuse one older than MIN_SERVER_VERSION."""
        try:
            info = self._client.info()
        except Exception as exc:
            raise RetrievalError(f"cannot read the Qdrant server version at {url}: {exc}") from exc
        check_server_version(getattr(info, "version", None), url)

    # --- aliases ------------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        now = time.monotonic()
        if now - self._aliases_at >= _ALIAS_TTL_S:
            got = self._client.get_aliases().aliases
            self._aliases = {a.alias_name: a.collection_name for a in got}
            self._aliases_at = now
        return self._aliases

    def resolve(self, name: str) -> str:
        validate_collection_name(name)
        return self.aliases().get(name, name)

    def _change_aliases(self, ops: list[Any]) -> None:
        self._client.update_collection_aliases(change_aliases_operations=ops)
        self._aliases_at = -_ALIAS_TTL_S

    def set_alias(self, alias: str, collection: str) -> None:
        validate_alias_name(alias)
        with self._alias_lock:
            self._aliases_at = -_ALIAS_TTL_S
            table = self.aliases()
            if collection in table:
                raise RetrievalError(f"{collection!r} is itself an alias; name a collection")
            if self.collection_meta(collection) is None:
                raise CollectionNotFoundError(f"collection {collection!r} does not exist")
            if alias not in table and self._client.collection_exists(alias):
                raise RetrievalError(f"{alias!r} is a collection; an alias cannot take its name")
            ops: list[Any] = []
            if alias in table:
                ops.append(models.DeleteAliasOperation(
                    delete_alias=models.DeleteAlias(alias_name=alias)))  # fmt: skip
            ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
                collection_name=collection, alias_name=alias)))  # fmt: skip
            self._change_aliases(ops)

    def drop_alias(self, alias: str) -> None:
        with self._alias_lock:
            self._aliases_at = -_ALIAS_TTL_S
            if alias not in self.aliases():
                raise CollectionNotFoundError(f"alias {alias!r} does not exist")
            self._change_aliases([models.DeleteAliasOperation(
                delete_alias=models.DeleteAlias(alias_name=alias))])  # fmt: skip

    # --- collections --------------------------------------------------------------------------
    def collection_meta(self, name: str) -> CollectionMeta | None:
        name = self.resolve(name)
        if not self._client.collection_exists(name):
            return None
        meta = self._client.get_collection(name).config.metadata or {}
        if _META_KEY not in meta:
            raise RetrievalError(
                f"collection {name!r} was not created by llmops (no embedding model recorded)"
            )
        return CollectionMeta.model_validate(meta[_META_KEY])

    def _require(self, name: str) -> None:
        if self.collection_meta(name) is None:
            raise CollectionNotFoundError(f"collection {name!r} does not exist")

    def create_collection(self, name: str, meta: CollectionMeta) -> None:
        if self.resolve(name) != name:
            raise RetrievalError(f"{name!r} is an alias; a collection cannot take its name")
        if self._client.collection_exists(name):
            raise RetrievalError(f"collection {name!r} already exists")
        self._client.create_collection(
            name,
            vectors_config={
                DENSE: models.VectorParams(size=meta.dim, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            shard_number=self._config.shard_number,
            replication_factor=self._config.replication_factor,
            metadata={_META_KEY: meta.model_dump(mode="json")},
        )
        with warnings.catch_warnings():  # local mode warns that it ignores payload indexes
            warnings.simplefilter("ignore", UserWarning)
            for field in INDEXED_FIELDS:
                self._client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)

    def update_meta(self, name: str, meta: CollectionMeta) -> None:
        name = self.resolve(name)
        self._require(name)
        self._client.update_collection(name, metadata={_META_KEY: meta.model_dump(mode="json")})

    def list_collections(self) -> list[str]:
        return sorted(c.name for c in self._client.get_collections().collections)

    def drop_collection(self, name: str) -> None:
        validate_collection_name(name)
        self._aliases_at = -_ALIAS_TTL_S
        refuse_served_drop(self.aliases(), name)
        self._client.delete_collection(name)

    def upsert(self, name: str, points: Sequence[PointData]) -> None:
        name = self.resolve(name)
        if not points:
            return
        structs = [
            models.PointStruct(
                id=p.id, vector={DENSE: p.dense, SPARSE: _sparse(p.sparse)}, payload=p.payload
            )
            for p in points
        ]
        self._client.upsert(name, structs, wait=True)

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        name = self.resolve(name)
        if not ids:
            return set()
        recs = self._client.retrieve(name, list(ids), with_payload=False, with_vectors=False)
        return {str(r.id) for r in recs}

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        name = self.resolve(name)
        if ids:
            self._client.set_payload(name, payload, points=list(ids), wait=True)

    def count(self, name: str, flt: Filter | None = None) -> int:
        name = self.resolve(name)
        return self._client.count(name, count_filter=to_qdrant_filter(flt), exact=True).count

    def delete(self, name: str, flt: Filter) -> None:
        name = self.resolve(name)
        qf = to_qdrant_filter(flt)
        assert qf is not None
        self._client.delete(name, points_selector=models.FilterSelector(filter=qf), wait=True)

    def sources(self, name: str) -> dict[str, int]:
        name = self.resolve(name)
        resp = self._client.facet(name, key="source", limit=_BIG, exact=True)
        return {str(h.value): h.count for h in resp.hits}

    def query(self, name: str, plan: QueryPlan) -> list[StoredHit]:
        name = self.resolve(name)
        flt = to_qdrant_filter(plan.filter)
        has_sparse = plan.sparse is not None and bool(plan.sparse.indices)
        if plan.mode in ("rrf", "dbsf") and plan.dense is not None and has_sparse:
            assert plan.sparse is not None
            fusion: Any = (
                models.RrfQuery(
                    rrf=models.Rrf(
                        k=plan.rrf_k, weights=list(plan.weights) if plan.weights else None
                    )
                )
                if plan.mode == "rrf"
                else models.FusionQuery(fusion=models.Fusion.DBSF)
            )
            res = self._client.query_points(
                name,
                prefetch=[
                    models.Prefetch(
                        query=plan.dense, using=DENSE, limit=plan.prefetch_limit, filter=flt
                    ),
                    models.Prefetch(
                        query=_sparse(plan.sparse),
                        using=SPARSE,
                        limit=plan.prefetch_limit,
                        filter=flt,
                    ),
                ],
                query=fusion,
                query_filter=flt,
                limit=plan.limit,
                with_payload=True,
            )
        else:
            if plan.mode == "sparse" or plan.dense is None:
                if not has_sparse:
                    return []
                assert plan.sparse is not None
                query: Any = _sparse(plan.sparse)
                using = SPARSE
            else:
                query, using = plan.dense, DENSE
            res = self._client.query_points(
                name,
                query=query,
                using=using,
                query_filter=flt,
                limit=plan.limit,
                with_payload=True,
            )
        return [StoredHit(str(p.id), float(p.score), dict(p.payload or {})) for p in res.points]

    def optimize(self, name: str) -> None:
        """The server indexes in the background."""

    # --- snapshots ----------------------------------------------------------------------------
    def _server(self) -> tuple[str, dict[str, str]]:
        if not self._config.url:
            raise RetrievalError(
                "snapshots need a Qdrant server (qdrant-client's local mode has none): set "
                "store.url, or copy the local-mode folder while nothing uses it"
            )
        key = self._api_key
        return self._config.url.rstrip("/"), ({"api-key": key} if key else {})

    def snapshot(self, name: str, dest: Path) -> Path:
        """Qdrant's own collection snapshot (metadata included), created on the server,
        downloaded to ``dest`` and then deleted from the server's disk."""
        import httpx

        base, headers = self._server()
        real = self.resolve(name)
        self._require(real)
        desc = self._client.create_snapshot(real, wait=True)
        if desc is None:
            raise RetrievalError(f"the server made no snapshot of {real!r}")
        url = f"{base}/collections/{quote(real, safe='')}/snapshots/{quote(desc.name, safe='')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            with httpx.stream("GET", url, headers=headers, timeout=self._config.timeout_s) as r:
                r.raise_for_status()
                with tmp.open("wb") as fh:
                    for chunk in r.iter_bytes(1 << 20):
                        fh.write(chunk)
            os.replace(tmp, dest)
        except httpx.HTTPError as exc:
            raise RetrievalError(f"cannot download the snapshot of {real!r}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
            self._client.delete_snapshot(real, desc.name, wait=True)
        return dest

    def restore(self, snapshot: Path, name: str) -> None:
        """Upload a snapshot file as the new collection ``name`` (Qdrant's snapshot upload)."""
        import httpx

        base, headers = self._server()
        validate_collection_name(name)
        if self.resolve(name) != name or self._client.collection_exists(name):
            raise RetrievalError(f"{name!r} already exists: restore under another name")
        url = f"{base}/collections/{quote(name, safe='')}/snapshots/upload"
        try:
            with snapshot.open("rb") as fh:
                r = httpx.post(url, params={"wait": "true", "priority": "snapshot"},
                               files={"snapshot": (snapshot.name, fh)}, headers=headers,
                               timeout=None)  # fmt: skip
            r.raise_for_status()
        except OSError as exc:
            raise RetrievalError(f"cannot read {snapshot}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise RetrievalError(f"the server refused the snapshot: {exc}") from exc
        self.collection_meta(name)  # refuses a collection llmops did not make

    def close(self) -> None:
        self._client.close()
