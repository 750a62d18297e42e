"""The data routes are served by the data router whatever middleware the app has; CORS applies
to them and to the FastAPI routes alike, with or without it configured."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway._app import GatewayApp
from gateway.limits import edge_plugin
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, make_config

APP = "https://app.example"
EVIL = "https://evil.example"
DATA = {
    "/v1/chat/completions": {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"model": "chat", "prompt": "hi"},
    "/v1/embeddings": {"model": "emb", "input": "hi"},
}


class _CountFastAPI:
    """A user middleware on the FastAPI app: counts the requests that reach its stack."""

    def __init__(self, app: ASGIApp, seen: Counter[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen[f"{scope['method']} {scope['path']}"] += 1
        await self.app(scope, receive, send)


class Spy:
    def __init__(self) -> None:
        self.lean: Counter[str] = Counter()
        self.fastapi: Counter[str] = Counter()

    def plugin(self, gw: GatewayApp) -> None:
        gw.app.add_middleware(_CountFastAPI, seen=self.fastapi)  # type: ignore[arg-type]
        routes = gw.data_router.routes
        for path, handler in list(routes.items()):
            routes[path] = self._counting(path, handler)

    def _counting(self, path: str, handler: Any) -> Any:
        async def counted(request: Request) -> Any:
            self.lean[path] += 1
            return await handler(request)

        return counted


_CORS = {
    "cors-off": None,
    "cors-on": {"allow_origins": [APP]},
    "cors-any": {"allow_origins": ["*"], "allow_credentials": True},
}


@pytest.fixture(scope="module", params=sorted(_CORS))
def served(
    request: pytest.FixtureRequest, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> Iterator[tuple[GatewayServer, Spy, str]]:
    cors = _CORS[request.param]
    over: dict[str, Any] = {"server": {"cors": cors}} if cors else {}
    spy = Spy()
    # The spy comes last: its middleware is added after CORS, as any later plug-in's would be.
    gw = GatewayServer(make_config([upstreams[0].url], **over), [edge_plugin, spy.plugin])
    gw.start()
    yield gw, spy, request.param
    gw.stop()


def _auth(origin: str | None = APP) -> dict[str, str]:
    h = {"authorization": f"Bearer {ADMIN_KEY}"}
    return {**h, "origin": origin} if origin else h


def test_data_routes_take_the_lean_path_with_any_middleware(
    served: tuple[GatewayServer, Spy, str],
) -> None:
    gw, spy, _ = served
    spy.lean.clear()
    spy.fastapi.clear()
    for path, body in DATA.items():
        for origin in (APP, EVIL, None):
            r = httpx.post(gw.url + path, json=body, headers=_auth(origin))
            assert r.status_code == 200, r.text
    assert spy.lean == {path: 3 for path in DATA}
    assert not [k for k in spy.fastapi if k.startswith("POST /v1/")], spy.fastapi
    # Everything else still goes through FastAPI and its middleware.
    assert httpx.get(gw.url + "/v1/models", headers=_auth()).status_code == 200
    assert httpx.get(gw.url + "/v1/chat/completions", headers=_auth()).status_code == 405
    assert spy.fastapi["GET /v1/models"] == 1
    assert spy.fastapi["GET /v1/chat/completions"] == 1
    assert sum(spy.lean.values()) == 3 * len(DATA)


def _cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-") or k == "vary"}


@pytest.mark.parametrize("origin", [APP, EVIL, None])
def test_cors_headers_on_both_paths(
    served: tuple[GatewayServer, Spy, str], origin: str | None
) -> None:
    gw, _, cors = served
    chat = httpx.post(
        gw.url + "/v1/chat/completions",
        json=DATA["/v1/chat/completions"],
        headers=_auth(origin),
    )
    models = httpx.get(gw.url + "/v1/models", headers=_auth(origin))
    assert chat.status_code == models.status_code == 200
    # The lean path adds exactly what the FastAPI path does.
    assert _cors_headers(chat) == _cors_headers(models)
    if cors == "cors-off":
        assert _cors_headers(chat) == {}
        return
    allowed = chat.headers.get("access-control-allow-origin")
    if origin == APP or (origin is not None and cors == "cors-any"):
        assert allowed == origin
        exposed = chat.headers["access-control-expose-headers"].lower()
        assert "x-request-id" in exposed and "x-ratelimit-remaining-requests" in exposed
    else:
        assert allowed is None
    assert "origin" in chat.headers["vary"].lower()


def test_preflight(served: tuple[GatewayServer, Spy, str]) -> None:
    gw, spy, cors = served
    lean_before = sum(spy.lean.values())
    pre = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
    }
    ok = httpx.options(gw.url + "/v1/chat/completions", headers={**pre, "origin": APP})
    evil = httpx.options(gw.url + "/v1/chat/completions", headers={**pre, "origin": EVIL})
    if cors == "cors-on":
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == APP
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert ok.headers["access-control-max-age"] == "600"
        assert evil.status_code == 400
        assert evil.headers.get("access-control-allow-origin") != EVIL
    elif cors == "cors-any":
        assert ok.status_code == evil.status_code == 200
        assert evil.headers["access-control-allow-origin"] == EVIL  # credentials: named
    else:
        assert ok.status_code == 405
        assert "access-control-allow-origin" not in ok.headers
        assert "access-control-allow-origin" not in evil.headers
    # Preflights are answered where every other route's are: by FastAPI's middleware stack.
    assert sum(spy.lean.values()) == lean_before
    assert spy.fastapi["OPTIONS /v1/chat/completions"] >= 2


def test_an_unexpected_error_on_the_lean_path_is_an_openai_500(
    upstreams: tuple[FakeUpstream, FakeUpstream],
) -> None:
    def broken(gw: GatewayApp) -> None:
        async def boom(request: Request) -> Any:
            raise RuntimeError("bug")

        gw.data_router.routes["/v1/chat/completions"] = boom

    gw = GatewayServer(make_config([upstreams[0].url]), [broken]).start()
    try:
        r = httpx.post(gw.url + "/v1/chat/completions", json={}, headers={"x-request-id": "r-1"})
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error"
        assert r.headers["x-request-id"] == "r-1"
    finally:
        gw.stop()
