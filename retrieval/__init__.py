"""Retrieval: ingest documents into Qdrant (embedded Qdrant Edge or a server/cluster), hybrid
dense + BM25 search, and the `Retriever` the gateway uses. Imports nothing else of ours."""

from ._config import (
    DEFAULT_MODE,
    SEARCH_MODES,
    ChunkingConfig,
    EmbedderConfig,
    RerankerConfig,
    RetrievalConfig,
    SearchConfig,
    SearchMode,
    SparseConfig,
    StoreConfig,
    validate_alias_name,
    validate_collection_name,
)
from ._embedders import Embedder, OpenAIEmbedder, SentenceTransformerEmbedder, make_embedder
from ._errors import (
    CollectionNotFoundError,
    InvalidFilterError,
    LoaderError,
    ModelMismatchError,
    RetrievalError,
    StoreBusyError,
)
from ._filters import ComparisonFilter, CompoundFilter, Filter, parse_filters
from ._ingest import RESERVED_PAYLOAD, IngestProgress, IngestReport
from ._loaders import SUPPORTED_SUFFIXES
from ._open import open_store
from ._rebuild import (
    BuiltVersion,
    RebuildError,
    build_next_version,
    catch_up,
)
from ._search import CrossEncoderReranker, Hit, Reranker, Retriever
from ._store import CollectionMeta, Store
from ._versions import (
    Versions,
    collection_versions,
    parse_version,
    prune_versions,
    rollback_alias,
    switch_alias,
    version_name,
)

__all__ = [
    "DEFAULT_MODE",
    "RESERVED_PAYLOAD",
    "SEARCH_MODES",
    "SUPPORTED_SUFFIXES",
    "BuiltVersion",
    "ChunkingConfig",
    "CollectionMeta",
    "CollectionNotFoundError",
    "ComparisonFilter",
    "CompoundFilter",
    "CrossEncoderReranker",
    "Embedder",
    "EmbedderConfig",
    "Filter",
    "Hit",
    "IngestProgress",
    "IngestReport",
    "InvalidFilterError",
    "LoaderError",
    "ModelMismatchError",
    "OpenAIEmbedder",
    "RebuildError",
    "Reranker",
    "RerankerConfig",
    "RetrievalConfig",
    "RetrievalError",
    "Retriever",
    "SearchConfig",
    "SearchMode",
    "SentenceTransformerEmbedder",
    "SparseConfig",
    "Store",
    "StoreBusyError",
    "StoreConfig",
    "Versions",
    "build_next_version",
    "catch_up",
    "collection_versions",
    "make_embedder",
    "open_store",
    "parse_filters",
    "parse_version",
    "prune_versions",
    "rollback_alias",
    "switch_alias",
    "validate_alias_name",
    "validate_collection_name",
    "version_name",
]
