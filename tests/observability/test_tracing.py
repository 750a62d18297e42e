"""Spans captured in-process (the SDK's in-memory exporter) for plain, streamed, prompt and RAG
requests through the real gateway, with the exact Langfuse attributes asserted.

Prompt/RAG: the real prompt resolver (``gateway._prompt_resolution.resolve_prompt``) is wired by a
small test plug-in that sets ``ctx.extensions`` the way the gateway's resolver does ("prompt",
"citations", "retrieval"); the registry is an in-memory stand-in and retrieval returns fixed hits
(no Qdrant needed for what is under test here: the spans).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway._app import GatewayApp
from gateway._context import RequestContext
from gateway._errors import GatewayError
from gateway._prompt_resolution import has_prompt_reference, resolve_prompt
from observability import trace_id_for
from prompts import PromptError, PromptVersion, canonical_version, parse_template
from tests.observability.conftest import ADMIN_KEY, obs_config

REPO = Path(__file__).resolve().parents[2]


def spans_of(gw: Any, exporter: Any) -> list[Any]:
    gw.gw.observability.flush()
    return list(exporter.get_finished_spans())


def by_trace(spans: list[Any], trace_id: str) -> dict[str, Any]:
    """{'root': span, 'generation': span?, 'retrieval': span?} of one trace. A plain request is
    one span: the generation is the root and has no parent."""
    out: dict[str, Any] = {}
    for s in spans:
        if format(s.context.trace_id, "032x") != trace_id:
            continue
        kind = s.attributes.get("langfuse.observation.type")
        if s.parent is None:
            assert "root" not in out, "one top-level span per trace"
            out["root"] = s
        if kind in ("generation", "embedding"):
            out["generation"] = s
        elif kind == "retriever":
            out["retrieval"] = s
    return out


def meta(span: Any, key: str) -> Any:
    """A key of the observation metadata (one JSON object attribute, as Langfuse reads it)."""
    return json.loads(span.attributes["langfuse.observation.metadata"]).get(key)


def client(gw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


def test_plain_chat_trace(start_gateway: Any, upstream: Any) -> None:
    gw, exp = start_gateway(obs_config())
    raw = client(gw).chat.completions.with_raw_response.create(
        model="chat-alias",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.2,
        max_tokens=16,
        user="u-1",
        extra_headers={"x-request-id": "req-plain-1", "x-session-id": "sess-9"},
    )
    tid = trace_id_for("req-plain-1")
    assert raw.headers["x-trace-id"] == tid
    assert raw.parse().choices[0].message.content == "[a] echo: hello there"
    t = by_trace(spans_of(gw, exp), tid)
    assert set(t) == {"root", "generation"}
    gen = t["generation"]
    assert gen is t["root"]  # one span: the generation carries the trace attributes too
    ga = dict(gen.attributes)
    assert gen.name == "chat:chat"
    assert ga["langfuse.trace.name"] == "chat"
    assert ga["user.id"] == "u-1"
    assert ga["session.id"] == "sess-9"
    assert ga["langfuse.internal.is_app_root"] is True
    assert gen.instrumentation_scope.name == "langfuse-sdk"
    assert ga["langfuse.observation.type"] == "generation"
    assert ga["langfuse.observation.model.name"] == "chat"
    assert "langfuse.observation.level" not in ga  # DEFAULT is Langfuse's own default
    assert json.loads(ga["langfuse.observation.model.parameters"]) == {
        "temperature": 0.2,
        "max_tokens": 16,
    }
    assert json.loads(ga["langfuse.observation.input"]) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert ga["langfuse.observation.output"] == "[a] echo: hello there"
    assert json.loads(ga["langfuse.observation.usage_details"]) == {
        "input": 7,
        "output": 5,
        "total": 12,
    }
    assert json.loads(ga["langfuse.observation.metadata"]) == {
        "request_id": "req-plain-1",
        "replica": upstream.url,
        "status": 200,
        "attempts": 1,
        "finish_reason": "stop",
        "api_key": "admin",
        "requested_model": "chat-alias",
        "served_model": "served-chat",
    }
    assert "langfuse.observation.completion_start_time" not in ga  # not streamed: no TTFT
    assert "langfuse.observation.prompt.name" not in ga
    assert "langfuse.version" not in ga
    # timing: the span covers the request as the gateway saw it
    assert 0 < gen.end_time - gen.start_time < 10e9


def test_streamed_chat_trace(start_gateway: Any) -> None:
    gw, exp = start_gateway(obs_config())
    stream = client(gw).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "req-stream-1"},
    )
    text = "".join(
        c.choices[0].delta.content or "" for c in stream if c.choices and c.choices[0].delta
    )
    t = by_trace(spans_of(gw, exp), trace_id_for("req-stream-1"))
    gen = t["generation"]
    ga = dict(gen.attributes)
    assert ga["langfuse.observation.output"] == text == "[a] echo: stream me  "
    assert json.loads(ga["langfuse.observation.usage_details"]) == {
        "input": 7,
        "output": 5,
        "total": 12,
    }
    assert json.loads(ga["langfuse.observation.model.parameters"]) == {"stream": True}
    assert meta(gen, "status") == 200
    # completion start lies between the span's start and end (Langfuse derives TTFT from it)
    from datetime import datetime

    first = datetime.fromisoformat(json.loads(ga["langfuse.observation.completion_start_time"]))
    assert gen.start_time < first.timestamp() * 1e9 <= gen.end_time + 2e6


class _Registry:
    """In-memory stand-in for the git prompt registry (same ``get`` contract)."""

    def __init__(self) -> None:
        text = (REPO / "prompts" / "rag-answer.yaml").read_text()
        import yaml

        self.pv = PromptVersion(
            name="rag-answer",
            version=canonical_version(yaml.safe_load(text)),
            commit="0123456789abcdef0123456789abcdef01234567",
            template=parse_template(text, source="rag-answer.yaml", stem="rag-answer"),
        )

    def get(self, name: str, version: str | None = None, *, user: str | None = None) -> Any:
        return self.pv


HITS = [
    {
        "id": "fr-1",
        "score": 0.91,
        "text": "Paris is the capital of France.",
        "source": "geo.md",
        "metadata": {},
    },
    {
        "id": "fr-7",
        "score": 0.55,
        "text": "France is in Europe.",
        "source": "eu.md",
        "metadata": {},
    },
]


def prompt_plugin_for_tests(gw: GatewayApp) -> None:
    registry = _Registry()

    async def retrieve(collection: str, query: str, top_k: int, filters: Any) -> list[Any]:
        return HITS[:top_k]

    async def resolver(ctx: RequestContext) -> bool:
        if ctx.data is None or not has_prompt_reference(ctx.data, "chat"):
            return False
        try:
            res = await resolve_prompt(ctx.data, registry, retrieve=retrieve)
        except PromptError as e:
            raise GatewayError(e.status, e.message, code=e.code, param=e.param) from e
        ctx.data = res.body
        ctx.extensions["prompt"] = res.prompt
        ctx.extensions["citations"] = res.citations
        tpl = registry.pv.template
        assert tpl.retrieval is not None
        ctx.extensions["retrieval"] = {
            "collection": tpl.retrieval.collection,
            "top_k": tpl.retrieval.top_k,
            "query": (ctx.data and None) or None,
        }
        ctx.extensions["retrieval"].pop("query")
        ctx.response_headers.update(res.headers)
        return True

    gw.proxy.resolvers.append(resolver)


def ga_output(span: Any) -> Any:
    return span.attributes["langfuse.observation.output"]


def test_prompt_and_rag_trace(start_gateway: Any) -> None:
    gw, exp = start_gateway(obs_config(), extra=[prompt_plugin_for_tests])
    q = "What is the capital of France?"
    raw = client(gw).chat.completions.with_raw_response.create(
        model="chat",
        messages=[],
        extra_body={"prompt": {"id": "rag-answer", "variables": {"question": q}}},
        extra_headers={"x-request-id": "req-rag-1"},
    )
    tid = trace_id_for("req-rag-1")
    assert raw.headers["x-trace-id"] == tid
    body = orjson.loads(raw.content)
    assert [c["id"] for c in body["citations"]] == ["fr-1", "fr-7"]
    t = by_trace(spans_of(gw, exp), tid)
    assert set(t) == {"root", "generation", "retrieval"}
    root, gen, ret = t["root"], t["generation"], t["retrieval"]
    pv = _Registry().pv
    ra = dict(root.attributes)
    assert ra["langfuse.trace.name"] == "rag-answer"
    assert ra["langfuse.internal.is_app_root"] is True
    assert ra["langfuse.observation.input"] == q  # the user's question, not the template
    assert ra["langfuse.version"] == pv.version
    assert ra["langfuse.observation.output"] == ga_output(gen)
    assert meta(root, "request_id") == "req-rag-1"
    assert gen.parent.span_id == root.context.span_id
    assert root.start_time <= ret.start_time <= gen.start_time <= gen.end_time <= root.end_time
    ga = dict(gen.attributes)
    assert ga["langfuse.version"] == pv.version
    assert "langfuse.trace.name" not in ga  # trace attributes sit on the root only
    assert "langfuse.internal.is_app_root" not in ga
    assert meta(gen, "prompt_commit") == pv.commit
    # a git hash is no Langfuse-managed prompt version: no prompt link attributes
    assert "langfuse.observation.prompt.version" not in ga
    assert json.loads(ga["langfuse.observation.model.parameters"]) == {
        "temperature": 0.1,
        "max_tokens": 200,
    }
    sent = json.loads(ga["langfuse.observation.input"])
    assert (
        sent[0]["role"] == "system" and "[1] Paris is the capital of France." in sent[1]["content"]
    )
    rt = dict(ret.attributes)
    assert ret.parent.span_id == root.context.span_id
    assert rt["langfuse.observation.type"] == "retriever"
    assert json.loads(rt["langfuse.observation.input"]) == {"query": q, "collection": "docs"}
    assert json.loads(rt["langfuse.observation.output"]) == [
        {"id": "fr-1", "source": "geo.md", "score": 0.91},
        {"id": "fr-7", "source": "eu.md", "score": 0.55},
    ]
    assert meta(ret, "hit_ids") == ["fr-1", "fr-7"]
    assert meta(ret, "scores") == [0.91, 0.55]
    assert meta(ret, "top_k") == 3
    assert meta(ret, "hits") == 2
    assert ret.end_time <= gen.start_time  # retrieval happened before forwarding


def test_redaction_patterns_and_full(start_gateway: Any) -> None:
    gw, exp = start_gateway(obs_config())
    client(gw).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "mail bob@example.com now"}],
        extra_headers={"x-request-id": "req-red-1"},
    )
    t = by_trace(spans_of(gw, exp), trace_id_for("req-red-1"))
    assert json.loads(t["generation"].attributes["langfuse.observation.input"]) == [
        {"role": "user", "content": "mail [REDACTED] now"}
    ]
    assert t["generation"].attributes["langfuse.observation.output"] == (
        "[a] echo: mail [REDACTED] now"
    )
    assert "bob@example.com" not in json.dumps(dict(t["generation"].attributes))

    gw2, exp2 = start_gateway(obs_config(redaction={"mode": "full"}))
    client(gw2).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "secret stuff"}],
        extra_headers={"x-request-id": "req-red-2"},
    )
    t2 = by_trace(spans_of(gw2, exp2), trace_id_for("req-red-2"))
    dumped = json.dumps(dict(t2["generation"].attributes))
    assert "secret" not in dumped
    assert json.loads(t2["generation"].attributes["langfuse.observation.input"]) == [
        {"role": "user", "content": "[REDACTED]"}
    ]

    gw3, exp3 = start_gateway(obs_config({"capture_input": False, "capture_output": False}))
    client(gw3).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "nothing kept"}],
        extra_headers={"x-request-id": "req-red-3"},
    )
    t3 = by_trace(spans_of(gw3, exp3), trace_id_for("req-red-3"))
    for s in t3.values():
        assert "langfuse.observation.input" not in s.attributes
        assert "langfuse.observation.output" not in s.attributes
    assert json.loads(t3["generation"].attributes["langfuse.observation.usage_details"])


def test_sampling_decides_header_and_trace_together(start_gateway: Any) -> None:
    gw, exp = start_gateway(obs_config({"sample_rate": 0.5}))
    c = client(gw)
    headers = {}
    for i in range(40):
        raw = c.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-request-id": f"req-s-{i}"},
        )
        headers[f"req-s-{i}"] = raw.headers.get("x-trace-id")
    traced = {format(s.context.trace_id, "032x") for s in spans_of(gw, exp)}
    with_header = {h for h in headers.values() if h}
    assert traced == with_header
    assert 5 <= len(traced) <= 35, len(traced)  # 40 draws at p=0.5
    print(f"sampling 0.5: {len(traced)}/40 requests traced")

    gw0, exp0 = start_gateway(obs_config({"sample_rate": 0.0}))
    raw = client(gw0).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "x"}]
    )
    assert "x-trace-id" not in raw.headers
    assert spans_of(gw0, exp0) == []


def test_errors_are_traced(start_gateway: Any) -> None:
    gw, exp = start_gateway(obs_config())
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "nope", "messages": []},
        headers={"authorization": f"Bearer {ADMIN_KEY}", "x-request-id": "req-404"},
    )
    assert r.status_code == 404
    assert r.headers["x-trace-id"] == trace_id_for("req-404")
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "chat", "messages": []},
        headers={"x-request-id": "req-401"},
    )
    assert r.status_code == 401
    spans = spans_of(gw, exp)
    t404 = by_trace(spans, trace_id_for("req-404"))
    t401 = by_trace(spans, trace_id_for("req-401"))
    assert set(t404) == {"root"} and set(t401) == {"root"}  # never reached a model
    assert t404["root"].attributes["langfuse.observation.level"] == "ERROR"
    assert t404["root"].attributes["langfuse.observation.status_message"] == "model_not_found"
    assert meta(t404["root"], "status") == 404
    assert t401["root"].attributes["langfuse.observation.status_message"] == "missing_api_key"


def test_upstream_failure_traced_as_error(start_gateway: Any, upstream: Any) -> None:
    gw, exp = start_gateway(obs_config())
    upstream.mode = "error500"
    try:
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {ADMIN_KEY}", "x-request-id": "r500"},
        )
    finally:
        upstream.mode = "ok"
    assert r.status_code == 500
    gen = by_trace(spans_of(gw, exp), trace_id_for("r500"))["generation"]
    assert gen.attributes["langfuse.observation.level"] == "ERROR"
    assert gen.attributes["langfuse.observation.output"] == "boom"
    assert meta(gen, "status") == 500


@pytest.mark.parametrize("route", ["completions", "embeddings"])
def test_other_routes(start_gateway: Any, route: str) -> None:
    gw, exp = start_gateway(obs_config())
    c = client(gw)
    if route == "completions":
        c.completions.create(
            model="chat",
            prompt="once upon",
            max_tokens=4,
            extra_headers={"x-request-id": f"req-{route}"},
        )
    else:
        c.embeddings.create(
            model="emb", input=["a", "b"], extra_headers={"x-request-id": f"req-{route}"}
        )
    gen = by_trace(spans_of(gw, exp), trace_id_for(f"req-{route}"))["generation"]
    ga = dict(gen.attributes)
    if route == "completions":
        assert ga["langfuse.observation.type"] == "generation"
        assert ga["langfuse.observation.input"] == "once upon"
        assert ga["langfuse.observation.output"] == "[a] completion"
    else:
        assert ga["langfuse.observation.type"] == "embedding"
        assert json.loads(ga["langfuse.observation.input"]) == ["a", "b"]
        assert ga["langfuse.observation.output"] == "[2 embeddings]"
