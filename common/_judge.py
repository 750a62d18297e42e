"""The ragas judge: an LLM reached over OpenAI's API (normally our own gateway).

The offline evals and the online quality monitor judge with the same ragas objects, built here,
so a score means the same thing in CI and in production.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import Any

from common._urls import openai_base_url


def ragas_llm(model: str, base_url: str, api_key: str, timeout_s: float = 120.0) -> Any:
    """``ragas.llms.llm_factory`` on an ``AsyncOpenAI`` client for ``base_url`` (root or /v1)."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # else ragas reaches a telemetry host
    from openai import AsyncOpenAI
    from ragas.llms import llm_factory

    client = AsyncOpenAI(
        base_url=openai_base_url(base_url), api_key=api_key, timeout=timeout_s, max_retries=1
    )
    return llm_factory(model, client=client)


def ragas_embeddings(encode: Callable[[Sequence[str]], Any]) -> Any:
    """Adapt an ``encode(texts) -> rows`` function to ragas' embedding interface."""
    from ragas.embeddings import BaseRagasEmbedding

    class _Local(BaseRagasEmbedding):  # type: ignore[misc]
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return [float(x) for x in encode([text])[0]]

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return await asyncio.to_thread(self.embed_text, text)

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return [[float(x) for x in v] for v in encode(list(texts))]

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return await asyncio.to_thread(self.embed_texts, texts)

    return _Local()
