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
    """Documents get saturated TF weights (k, b, avg_len); queries weight each unique term 1.

    Query vectors do not depend on ``avg_len``, so an encoder for queries needs none; encoding
    documents does (the ingest measures it first, see ``mean_length``)."""

    def __init__(self, config: SparseConfig) -> None:
        import qdrant_edge as qe

        self._avg_len = config.avg_len
        self._bm25 = qe.Bm25(
            qe.Bm25Config(
                k=config.k, b=config.b, avg_len=config.avg_len or 1.0, language=config.language
            )
        )

    def documents(self, texts: Sequence[str]) -> list[Sparse]:
        if self._avg_len is None:
            raise ValueError("BM25 documents need avg_len: measure it with mean_length first")
        out = []
        for text in texts:
            sv = self._bm25.embed_document(text)
            out.append(Sparse(list(sv.indices), list(sv.values)))
        return out

    def query(self, text: str) -> Sparse:
        sv = self._bm25.embed_query(text)
        return Sparse(list(sv.indices), list(sv.values))


def mean_length(config: SparseConfig, texts: Sequence[str]) -> float:
    """Mean length of ``texts`` in the BM25 encoder's own tokens (after its tokenizer, stop words
    and stemming). With b = 0 and a huge k the saturated weight of a term is its count to within
    1e-6, so the weights of a document sum to its length."""
    import qdrant_edge as qe

    counter = qe.Bm25(qe.Bm25Config(k=1e9, b=0.0, avg_len=1.0, language=config.language))
    total = sum(sum(counter.embed_document(t).values) for t in texts)
    return max(1.0, total / len(texts)) if texts else 1.0
