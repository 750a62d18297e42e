"""The store interface both backends implement, and the data that crosses it. The ingest
pipeline and the retriever only talk to this, so the embedded engine and a Qdrant cluster
behave the same (one shared test suite runs against both)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from ._config import DEFAULT_MODE, ChunkingConfig, SearchMode, SparseConfig
from ._errors import RetrievalError
from ._filters import Filter
from ._sparse import Sparse

DENSE = "dense"
SPARSE = "bm25"
INDEXED_FIELDS = ("source", "fingerprint", "tags", "doc_type")
SCHEMA_VERSION = 1


class CollectionMeta(BaseModel):
    """Recorded with each collection: the model that built it and how to search it."""

    model_config = ConfigDict(extra="ignore")
    schema_version: int = SCHEMA_VERSION
    model: str
    dim: int
    sparse: SparseConfig = SparseConfig(
        avg_len=180.0
    )  # what collections made before measuring used
    mode: SearchMode = DEFAULT_MODE
    rrf_k: int = 2
    weights: tuple[float, float] | None = None
    alpha: float = 0.5
    tuning: dict[str, Any] | None = None
    """What ``llmops retrieval tune`` measured when it chose the mode (per-mode scores)."""
    chunking: ChunkingConfig | None = None
    """How a rebuilt version's chunks were cut; files the gateway adds to it later without a
    chunking strategy of their own are cut the same way (None: the config's chunking)."""


@dataclass(slots=True)
class PointData:
    id: str
    dense: list[float]
    sparse: Sparse
    payload: dict[str, Any]


@dataclass(slots=True)
class StoredHit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(slots=True)
class QueryPlan:
    mode: SearchMode
    limit: int
    dense: list[float] | None = None
    sparse: Sparse | None = None
    filter: Filter | None = None
    prefetch_limit: int = 50
    rrf_k: int = 2
    weights: tuple[float, float] | None = None


class Store(Protocol):
    """Synchronous; callers on an event loop run it in a thread executor.

    Every method that takes a collection name also takes an alias (``kb`` for ``kb@v3``) and
    acts on the collection it names at that moment."""

    def aliases(self) -> dict[str, str]:
        """Alias -> the collection it names."""
        ...

    def resolve(self, name: str) -> str:
        """The collection an alias names; any other name as it is."""
        ...

    def set_alias(self, alias: str, collection: str) -> None:
        """Create the alias, or switch it to another collection, atomically."""
        ...

    def drop_alias(self, alias: str) -> None: ...

    def snapshot(self, name: str, dest: Path) -> Path:
        """Write a consistent copy of the collection (metadata included) to the file ``dest``."""
        ...

    def restore(self, snapshot: Path, name: str) -> None:
        """Create the collection ``name`` (which must not exist) from a ``snapshot`` file."""
        ...

    def collection_meta(self, name: str) -> CollectionMeta | None: ...

    def create_collection(self, name: str, meta: CollectionMeta) -> None: ...

    def update_meta(self, name: str, meta: CollectionMeta) -> None: ...

    def list_collections(self) -> list[str]: ...

    def drop_collection(self, name: str) -> None: ...

    def upsert(self, name: str, points: Sequence[PointData]) -> None: ...

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]: ...

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None: ...

    def count(self, name: str, flt: Filter | None = None) -> int: ...

    def delete(self, name: str, flt: Filter) -> None: ...

    def sources(self, name: str) -> dict[str, int]:
        """Chunk count per `source` payload value."""
        ...

    def query(self, name: str, plan: QueryPlan) -> list[StoredHit]: ...

    def optimize(self, name: str) -> None:
        """Build indexes after bulk writes (HNSW on the embedded engine; no-op on a server)."""
        ...

    def close(self) -> None: ...


def refuse_served_drop(aliases: Mapping[str, str], name: str) -> None:
    """Both backends refuse to drop an alias or a version an alias serves: a drop would turn
    every search of that alias into an error."""
    served = sorted(a for a, c in aliases.items() if name in (a, c))
    if served:
        raise RetrievalError(
            f"{name!r} is served by the alias {served[0]!r}: switch or drop the alias first"
            if name not in served
            else f"{name!r} is an alias: drop the alias, or the version it names"
        )
