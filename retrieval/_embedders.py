"""Dense embedders behind one small interface: a local sentence-transformers model or an
OpenAI-compatible `/v1/embeddings` upstream. Heavy imports happen on construction only."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from common import LocalEmbedder, local_embedder

from ._config import DEFAULT_MODEL, EmbedderConfig
from ._errors import RetrievalError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("llmops.retrieval.embedders")


@runtime_checkable
class Embedder(Protocol):
    """What ingest, search and the gateway's local `/v1/embeddings` need from a model."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input (in model tokens, special tokens excluded) the model reads in full."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 matrix, one row per text."""
        ...

    def embed_query(self, text: str) -> np.ndarray: ...


class _Described:
    """The identity every embedder reports: recorded in collections and checked on query."""

    _name: str
    _dim: int
    _max_tokens: int

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens


class SentenceTransformerEmbedder(_Described):
    """Local model on CPU/GPU: the process's shared :class:`common.LocalEmbedder` for its folder
    (loaded once, calls serialised by its lock), with the identity collections record."""

    def __init__(self, config: EmbedderConfig) -> None:
        if config.path is None and config.model != DEFAULT_MODEL:
            raise RetrievalError(
                f"embedder model {config.model!r} needs `path` (a local model folder); "
                f"only {DEFAULT_MODEL} ships with the package"
            )
        self._local: LocalEmbedder = local_embedder(config.path, config.device)
        self._name = config.model
        self._batch = config.batch_size
        try:
            self._dim = self._local.dim
        except ValueError as exc:
            raise RetrievalError(str(exc)) from None
        seq = self._local.max_seq_length
        self._max_tokens = int(config.max_tokens or seq) - 2  # [CLS] and [SEP]
        self._onnx_wanted = config.query_runtime == "onnx" and config.device == "cpu"
        self._onnx: Any = None
        self._onnx_lock = threading.Lock()

    @property
    def query_runtime(self) -> str:
        """What embeds queries: 'onnx' once the encoder is up, else 'torch'."""
        return "onnx" if self._onnx is not None else "torch"

    def _onnx_encoder(self) -> Any:
        if self._onnx is None and self._onnx_wanted:
            with self._onnx_lock:
                if self._onnx is None and self._onnx_wanted:
                    from common import default_model_path, llmops_home

                    from ._onnx_query import OnnxQueryEncoder

                    folder = Path(self._local.path or default_model_path())
                    try:
                        self._onnx = OnnxQueryEncoder(
                            self._local.model, folder, llmops_home() / "models" / "onnx"
                        )
                    except Exception as exc:  # missing runtime, other architecture, export
                        self._onnx_wanted = False
                        log.warning(
                            "queries of %s are embedded with PyTorch: no ONNX query encoder "
                            "(%s: %s)", self._name, type(exc).__name__, exc,
                        )  # fmt: skip
        return self._onnx

    @property
    def model(self) -> Any:
        return self._local.model

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._local.count_tokens(texts)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._local.encode(texts, self._batch)

    def embed_query(self, text: str) -> np.ndarray:
        onnx = self._onnx_encoder()
        if onnx is not None:
            return onnx.encode(text)  # type: ignore[no-any-return]
        return self.embed_documents([text])[0]


class OpenAIEmbedder(_Described):
    """Any OpenAI-compatible `/v1/embeddings` (vLLM, TEI, OpenAI) via the official SDK."""

    def __init__(self, config: EmbedderConfig) -> None:
        from openai import OpenAI

        if not config.base_url:
            raise RetrievalError("embedder kind 'openai' needs `base_url`")
        key = config.api_key.get_secret_value() if config.api_key else None
        if key is None and config.api_key_env:
            key = os.environ.get(config.api_key_env)
        self._client = OpenAI(
            base_url=config.base_url, api_key=key or "none", timeout=config.timeout_s
        )
        self._name = config.model
        self._batch = config.batch_size
        self._max_tokens = int(config.max_tokens or 512)
        self._tokenizer: Any = None
        if config.tokenizer:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(config.tokenizer)
        self._lock = threading.Lock()
        self._dim = config.dimensions or int(self._request(["dimension probe"]).shape[1])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._tokenizer is None:
            return [max(1, len(t) // 4) for t in texts]  # rough: no tokenizer for the upstream
        with self._lock:
            enc = self._tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def _request(self, texts: list[str]) -> np.ndarray:
        try:
            resp = self._client.embeddings.create(
                model=self._name, input=texts, encoding_format="float"
            )
        except Exception as exc:  # the SDK has many error classes; all mean the same here
            raise RetrievalError(f"embedding upstream failed: {exc}") from exc
        import numpy as np

        rows = sorted(resp.data, key=lambda d: d.index)
        mat = np.asarray([r.embedding for r in rows], dtype=np.float32)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        return mat / np.where(norms == 0, 1.0, norms)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        parts = [
            self._request(list(texts[i : i + self._batch]))
            for i in range(0, len(texts), self._batch)
        ]
        return np.concatenate(parts, axis=0)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class CachedQueryEmbedder:
    """Any embedder with a bounded, thread-safe LRU of query vectors keyed by (model name, exact
    text): repeated searches (dashboards, retrying agents, eval runs) skip the model, which is
    most of a search's latency. Documents pass through uncached (ingest rarely repeats a chunk).
    Cached vectors are read-only, so a caller cannot corrupt what later callers get."""

    def __init__(self, inner: Embedder, size: int) -> None:
        if size < 1:
            raise ValueError(f"query cache size must be >= 1, got {size}")
        self.inner = inner
        self.size = size
        self.cache_hits = 0
        self.cache_misses = 0
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes not found here: `model` (the gateway decodes token ids
        # with its tokenizer) and whatever else an inner embedder exposes.
        if attr in ("inner", "_cache", "_lock"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def __len__(self) -> int:
        return len(self._cache)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        key = (self.inner.name, text)
        with self._lock:
            vec = self._cache.get(key)
            if vec is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return vec
            self.cache_misses += 1
        # Embed outside the lock: other threads' hits must not wait on the model. Two threads
        # missing the same text both embed it; the second store is a harmless overwrite.
        import numpy as np

        vec = np.array(self.inner.embed_query(text), copy=True)
        vec.setflags(write=False)
        with self._lock:
            self._cache[key] = vec
            self._cache.move_to_end(key)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vec


def make_embedder(config: EmbedderConfig) -> Embedder:
    """Build the embedder a config names (loads the model now), with the query cache unless
    ``query_cache_size`` is 0."""
    inner: Embedder = (
        OpenAIEmbedder(config) if config.kind == "openai" else SentenceTransformerEmbedder(config)
    )
    if config.query_cache_size == 0:
        return inner
    return CachedQueryEmbedder(inner, config.query_cache_size)
