"""The sentence embedding used for drift: the gateway's sampler and ``llmops monitor drift``
must embed with the same model, so both go through :func:`load_embedder`.

Vectors are L2-normalised float32, from the process's shared :class:`common.LocalEmbedder`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from common import DEFAULT_EMBEDDING_MODEL, local_embedder

if TYPE_CHECKING:
    import numpy as np

Embed = Callable[[Sequence[str]], "np.ndarray"]


def model_label(path: str | None) -> str:
    return DEFAULT_EMBEDDING_MODEL if path is None else path.rstrip("/").rsplit("/", 1)[-1]


def load_embedder(path: str | None = None, batch_size: int = 32) -> Embed:
    """A function texts -> (n, dim) float32 array; loads the model now (seconds)."""
    local = local_embedder(path)
    local.model  # noqa: B018 - load now, not on the first sample

    def embed(texts: Sequence[str]) -> np.ndarray:
        return local.encode(texts, batch_size)

    return embed
