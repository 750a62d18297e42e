"""Semantic similarity with the local embedding model (all-MiniLM-L6-v2), loaded on first use.

The model is the process's shared :class:`common.LocalEmbedder`: loaded once, and its lock makes
the ``to_thread`` workers of a run safe to encode at once. Suites without embedding metrics never
load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common import LocalEmbedder, local_embedder


class Embedder:
    """The evals' view of the local model: batch encode and best-reference similarity."""

    def __init__(self, model_path: str | None = None) -> None:
        self._path = model_path

    @property
    def local(self) -> LocalEmbedder:
        return local_embedder(self._path)

    def encode(self, texts: Sequence[str]) -> Any:
        """Unit-normalised vectors (numpy array, one row per text)."""
        return self.local.encode(texts)

    async def aencode(self, texts: Sequence[str]) -> Any:
        return await self.local.aencode(texts)

    async def similarity(self, text: str, references: list[str]) -> float:
        """Highest cosine similarity between ``text`` and any reference."""
        vecs = await self.aencode([text, *references])
        return float((vecs[1:] @ vecs[0]).max())
