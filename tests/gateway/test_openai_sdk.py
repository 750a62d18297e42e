"""The official openai SDK against the gateway in front of fake vLLM replicas."""

from __future__ import annotations

import httpx
import openai

from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY


def test_chat_completion_roundtrip(
    client: openai.OpenAI, gateway: GatewayServer, fresh_upstreams: tuple[FakeUpstream, ...]
) -> None:
    resp = client.chat.completions.with_raw_response.create(
        model="chat-alias",
        messages=[{"role": "user", "content": "hello there"}],
        extra_body={"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.1},
        extra_headers={"x-request-id": "req-123"},
    )
    assert resp.headers["x-request-id"] == "req-123"
    out = resp.parse()
    assert out.choices[0].message.content is not None
    assert out.choices[0].message.content.endswith("echo: hello there")
    assert out.usage is not None and out.usage.total_tokens == 12
    seen = [r for u in fresh_upstreams for r in u.requests]
    assert len(seen) == 1
    # Alias rewritten to the replica's served name; vLLM's extra parameters untouched.
    assert seen[0]["model"] == "served-chat"
    assert (seen[0]["top_k"], seen[0]["min_p"], seen[0]["repetition_penalty"]) == (5, 0.1, 1.1)
    hdrs = next(h for u in fresh_upstreams for h in u.headers_seen)
    assert hdrs["x-request-id"] == "req-123"
    assert "authorization" not in hdrs  # the client's gateway key never reaches a replica


def test_request_id_generated(client: openai.OpenAI) -> None:
    resp = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "x"}]
    )
    assert len(resp.headers["x-request-id"]) >= 16


def test_streaming_with_usage(client: openai.OpenAI, gateway: GatewayServer) -> None:
    before = gateway.metric_value("llmops_tokens_total", model="chat", type="completion")
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces).startswith("[")
    assert usage is not None and usage.completion_tokens == 5
    after = gateway.metric_value("llmops_tokens_total", model="chat", type="completion")
    assert after - before == 5
    assert gateway.metric_value("llmops_time_to_first_token_seconds_count", model="chat") >= 1


def test_completions_plain_and_stream(client: openai.OpenAI) -> None:
    out = client.completions.create(model="chat", prompt="Once upon")
    assert out.choices[0].text.endswith("completion")
    text = "".join(
        c.choices[0].text for c in client.completions.create(model="chat", prompt="x", stream=True)
    )
    assert "completion" in text


def test_embeddings(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model="emb", input=["a", "b"])
    assert [d.index for d in out.data] == [0, 1]
    assert len(out.data[0].embedding) == 3


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == {"chat", "chat-alias", "emb"}
    assert client.models.retrieve("chat-alias").id == "chat-alias"
    try:
        client.models.retrieve("nope")
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found"


def test_metrics_after_calls(client: openai.OpenAI, gateway: GatewayServer) -> None:
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "m"}])
    assert (
        gateway.metric_value("llmops_requests_total", model="chat", route="chat", status=200) >= 1
    )
    assert gateway.metric_value("llmops_request_duration_seconds_count", model="chat") >= 1
    assert gateway.metric_value("llmops_replica_healthy", model="chat") == 2
    text = gateway.metrics()
    assert "llmops_in_flight_requests" in text


def test_health_and_ready(gateway: GatewayServer) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(gateway.url + "/readyz")
    assert r.status_code == 200 and r.json()["models"]["chat"]["ready"] is True


def test_concurrent_requests_use_both_replicas(
    gateway: GatewayServer, fresh_upstreams: tuple[FakeUpstream, ...]
) -> None:
    import asyncio

    async def run() -> None:
        c = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        await asyncio.gather(
            *(
                c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
                for _ in range(40)
            )
        )
        await c.close()

    asyncio.run(run())
    a, b = fresh_upstreams
    assert len(a.requests) + len(b.requests) == 40
    assert len(a.requests) >= 5 and len(b.requests) >= 5


def test_affinity_by_user_and_session(
    client: openai.OpenAI, fresh_upstreams: tuple[FakeUpstream, ...]
) -> None:
    for _ in range(10):
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], user="alice"
        )
    counts = sorted(len(u.requests) for u in fresh_upstreams)
    assert counts == [0, 10]
    for u in fresh_upstreams:
        u.requests.clear()
    for _ in range(10):
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-session-id": "s-42"},
        )
    assert sorted(len(u.requests) for u in fresh_upstreams) == [0, 10]
