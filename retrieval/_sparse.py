"""BM25-style sparse vectors from Qdrant's own Rust BM25 (`qdrant_edge.Bm25`): tokenising,
stemming, stop words and the term-frequency saturation; the collection's IDF modifier adds IDF.
Both store backends use it, so documents and queries are encoded the same way everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._config import SparseConfig


@dataclass(frozen=True, slots=True)
class Sparse:
    indices: list[int]
    values: list[float]


class Bm25Encoder:
    """Documents get saturated TF weights (k, b, avg_len); queries weight each unique term 1."""

    def __init__(self, config: SparseConfig) -> None:
        import qdrant_edge as qe

        self._bm25 = qe.Bm25(
            qe.Bm25Config(k=config.k, b=config.b, avg_len=config.avg_len, language=config.language)
        )

    def documents(self, texts: Sequence[str]) -> list[Sparse]:
        out = []
        for text in texts:
            sv = self._bm25.embed_document(text)
            out.append(Sparse(list(sv.indices), list(sv.values)))
        return out

    def query(self, text: str) -> Sparse:
        sv = self._bm25.embed_query(text)
        return Sparse(list(sv.indices), list(sv.values))
