"""OpenTelemetry GenAI semantic conventions beside Langfuse's names, and plain OTLP export.

Any OTel backend (the Collector, Tempo, Jaeger, Phoenix) reads a generation's operation, models,
usage and sampling parameters from the ``gen_ai.*`` attributes; ``tracing.exporter: otlp`` sends
the same spans to any OTLP/HTTP endpoint with no Langfuse keys at all. The receiver here is a
real OTLP/HTTP server on loopback that decodes the protobuf the exporter sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as semconv

from observability import trace_id_for
from tests.observability.conftest import ADMIN_KEY, obs_config
from tests.observability.otlp_receiver import Receiver
from tests.observability.test_export import wait_for
from tests.observability.test_tracing import by_trace, spans_of


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _client(gw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


def test_generation_carries_gen_ai_attributes(start_gateway: Any) -> None:
    gw, exp = start_gateway(obs_config())
    _client(gw).chat.completions.create(
        model="chat-alias",
        messages=[{"role": "user", "content": "hello there"}],
        temperature=0.2,
        max_tokens=16,
        extra_headers={"x-request-id": "req-genai-1"},
    )
    gen = by_trace(spans_of(gw, exp), trace_id_for("req-genai-1"))["generation"]
    ga = dict(gen.attributes)
    assert ga[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert ga[semconv.GEN_AI_REQUEST_MODEL] == "chat-alias"
    assert ga[semconv.GEN_AI_RESPONSE_MODEL] == "served-chat"
    assert ga[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert ga[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert ga[semconv.GEN_AI_REQUEST_TEMPERATURE] == pytest.approx(0.2)
    assert ga[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 16
    # Langfuse's own names stay
    assert ga["langfuse.observation.type"] == "generation"


def test_completions_and_embeddings_operations(start_gateway: Any) -> None:
    gw, exp = start_gateway(obs_config())
    c = _client(gw)
    c.completions.create(
        model="chat", prompt="Once", max_tokens=3, extra_headers={"x-request-id": "req-genai-c"}
    )
    c.embeddings.create(model="emb", input="x", extra_headers={"x-request-id": "req-genai-e"})
    spans = spans_of(gw, exp)
    comp = dict(by_trace(spans, trace_id_for("req-genai-c"))["generation"].attributes)
    assert comp[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    assert comp[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 3
    emb = dict(by_trace(spans, trace_id_for("req-genai-e"))["generation"].attributes)
    assert emb[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert semconv.GEN_AI_REQUEST_TEMPERATURE not in emb


def test_otlp_exporter_needs_no_langfuse(
    start_gateway: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default worker process exports to a plain OTLP endpoint; feedback becomes a span."""
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    endpoint = receiver.url + "/api/public/otel/v1/traces"
    cfg = obs_config(
        {
            "exporter": "otlp",
            "otlp": {"endpoint": endpoint, "headers": {"x-tenant": "team-a"}},
            "langfuse": {"public_key": None, "secret_key": None},
        }
    )
    gw, _ = start_gateway(cfg, in_memory=False)
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": "over otlp"}],
        extra_headers={"x-request-id": "req-otlp-1"},
    )
    tid = raw.headers["x-trace-id"]
    fb = httpx.post(
        gw.url + "/v1/feedback",
        json={"request_id": "req-otlp-1", "score": 1},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert fb.status_code == 200, fb.text
    gw.gw.observability.flush()
    wait_for(lambda: len([s for s in receiver.spans if s["trace_id"] == tid]) >= 2)
    spans = {s["name"]: s for s in receiver.spans if s["trace_id"] == tid}
    gen = spans["chat:chat"]["attributes"]
    assert gen[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert gen[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    score = spans["score:user-feedback"]["attributes"]
    assert score["llmops.score.value"] == 1.0
    assert not any(a.startswith("Basic ") for a in receiver.auth)  # no Langfuse auth sent
    assert not receiver.scores


def test_otlp_endpoint_must_be_http() -> None:
    from observability import TracingConfig

    with pytest.raises(ValueError, match=r"otlp\.endpoint"):
        TracingConfig.model_validate({"exporter": "otlp", "otlp": {"endpoint": "grpc://x"}})
