"""Shared pieces for the retrieval tests: the real default embedding model (loaded once), a
small copy of the fixture documents, and retrievers over both store backends."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval import EmbedderConfig, RetrievalConfig, Retriever, StoreConfig
from retrieval._embedders import SentenceTransformerEmbedder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FIXTURES = Path(__file__).parent / "fixtures"
BACKENDS = ["edge", "qdrant-local"]


class MemoEmbedder:
    """The real default model, remembering vectors of texts it has already embedded: the
    suites embed the same fixture chunks for every backend and test, and the CPU is shared."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.model = inner.model
        self._memo: dict[str, np.ndarray] = {}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            for t, v in zip(missing, self.inner.embed_documents(missing), strict=True):
                self._memo[t] = v
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


@pytest.fixture(scope="session")
def embedder() -> MemoEmbedder:
    return MemoEmbedder(SentenceTransformerEmbedder(EmbedderConfig()))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A few reST pages plus the mixed-format and bad files: small enough to embed in seconds."""
    root = tmp_path / "docs"
    shutil.copytree(FIXTURES / "mixed", root / "mixed")
    (root / "library").mkdir()
    for name in ("hmac.rst", "fnmatch.rst", "copy.rst"):
        shutil.copy(FIXTURES / "pydocs" / "library" / name, root / "library" / name)
    return root


def store_config(backend: str, tmp_path: Path) -> StoreConfig:
    if backend == "edge":
        return StoreConfig(backend="edge", path=str(tmp_path / "edge"))
    return StoreConfig(backend="qdrant", path=":memory:")


@pytest.fixture(params=BACKENDS)
def retriever(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: MemoEmbedder
) -> Iterator[Retriever]:
    cfg = RetrievalConfig(home=tmp_path / "home", store=store_config(request.param, tmp_path))
    r = Retriever(cfg, embedder=embedder)
    yield r
    r.close()
