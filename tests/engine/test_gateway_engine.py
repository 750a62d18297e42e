"""Through the gateway with the official openai SDK, against the real vLLM CPU engine.

The session gateway started the engine itself (model with no upstreams), as ``llmops serve``
does. Assertions are on content, token usage and the gateway's own metrics.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.engine.conftest import ENGINE_KEY, MODEL

pytestmark = [pytest.mark.engine, pytest.mark.asyncio(loop_scope="session")]

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


def _client(gateway: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=ENGINE_KEY, max_retries=0)


async def _metric(gateway: Any, name: str, **labels: Any) -> float:
    return await asyncio.to_thread(gateway.metric_value, name, **labels)


async def test_models_list_names_the_local_model(engine_gateway: Any) -> None:
    models = await _client(engine_gateway).models.list()
    assert [m.id for m in models.data] == [MODEL]


async def test_chat_answers_with_usage_and_counts_tokens(engine_gateway: Any) -> None:
    before = await _metric(engine_gateway, "llmops_tokens_total", model=MODEL, type="completion")
    resp = await _client(engine_gateway).chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=30, temperature=0
    )
    assert "Paris" in (resp.choices[0].message.content or "")
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    after = await _metric(engine_gateway, "llmops_tokens_total", model=MODEL, type="completion")
    assert after - before == resp.usage.completion_tokens
    ok = await _metric(engine_gateway, "llmops_requests_total", model=MODEL, status="200")
    assert ok >= 1


async def test_stream_with_include_usage(engine_gateway: Any) -> None:
    stream = await _client(engine_gateway).chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=30,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, chunks = "", None, 0
    async for chunk in stream:
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert "Paris" in text
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert chunks >= usage.completion_tokens  # streamed token by token, usage last


async def test_completions(engine_gateway: Any) -> None:
    resp = await _client(engine_gateway).completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=12, temperature=0
    )
    assert resp.choices[0].text.strip()
    assert resp.usage is not None and resp.usage.completion_tokens > 0


async def test_json_object_response_format(engine_gateway: Any) -> None:
    resp = await _client(engine_gateway).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Answer with a JSON object."},
            {"role": "user", "content": 'Give {"capital": ...} for France as JSON.'},
        ],
        response_format={"type": "json_object"},
        max_tokens=60,
        temperature=0,
    )
    content = resp.choices[0].message.content or ""
    assert isinstance(json.loads(content), dict), content


async def test_eight_concurrent_streams(engine_gateway: Any) -> None:
    client = _client(engine_gateway)
    before = await _metric(engine_gateway, "llmops_requests_total", model=MODEL, status="200")

    async def one(i: int) -> tuple[str, int]:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Count from {i} to {i + 5}."}],
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, tokens = "", 0
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return text, tokens

    results = await asyncio.gather(*(one(i) for i in range(8)))
    assert all(text.strip() and tokens > 0 for text, tokens in results)
    after = await _metric(engine_gateway, "llmops_requests_total", model=MODEL, status="200")
    assert after - before == 8
    assert await _metric(engine_gateway, "llmops_in_flight_requests", model=MODEL) == 0


async def test_client_disconnect_mid_stream_frees_the_engine(
    engine_gateway: Any, engine: Any
) -> None:
    """Closing the stream early must cancel the request inside vLLM (no wasted decoding)."""
    client = _client(engine_gateway)
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
        max_tokens=1500,
        temperature=0.8,
        stream=True,
    )
    got = 0
    async for _chunk in stream:
        got += 1
        if got == 5:
            break
    assert await _engine_running(engine) >= 1  # still decoding the abandoned request
    await stream.close()
    deadline = time.monotonic() + 60
    while await _engine_running(engine) > 0:
        assert time.monotonic() < deadline, "engine still decodes after the client left"
        await asyncio.sleep(0.5)
    resp = await client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=20, temperature=0
    )
    assert "Paris" in (resp.choices[0].message.content or "")


async def _engine_running(engine: Any) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{engine.base_url}/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            total += float(line.rsplit(" ", 1)[1])
    return total
