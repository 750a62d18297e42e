"""The data routes' CORS headers are exactly those Starlette's CORSMiddleware writes."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.middleware.cors import CORSMiddleware

from gateway._cors import DataRouteCors

_ORIGINS = ["https://app.example", "https://b.example", "*", "null"]
_header_names = st.sampled_from(
    [
        b"vary",
        b"access-control-allow-origin",
        b"access-control-expose-headers",
        b"access-control-allow-credentials",
        b"x-request-id",
        b"content-type",
    ]
)
_header_values = st.sampled_from([b"Accept", b"*", b"x", b"Origin", b"a, b"])


def _start_headers(middleware: Any, request_headers: list[tuple[bytes, bytes]], raw: Any) -> Any:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(raw)})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": request_headers,
    }
    asyncio.run(middleware(app)(scope, receive, send))
    assert sent[1] == {"type": "http.response.body", "body": b"{}", "more_body": False}
    return sent[0]["headers"]


@given(
    allow=st.lists(st.sampled_from(_ORIGINS), min_size=1, max_size=3, unique=True),
    credentials=st.booleans(),
    expose=st.lists(st.sampled_from(["x-request-id", "retry-after", "x-a"]), max_size=3),
    origin=st.none()
    | st.sampled_from(["https://app.example", "https://b.example", "https://evil.example", "null"]),
    cookie=st.booleans(),
    raw=st.lists(st.tuples(_header_names, _header_values), max_size=6),
)
@settings(max_examples=400, deadline=None)
def test_same_headers_as_starlette(
    allow: list[str],
    credentials: bool,
    expose: list[str],
    origin: str | None,
    cookie: bool,
    raw: list[tuple[bytes, bytes]],
) -> None:
    request = [(b"host", b"x"), (b"content-type", b"application/json")]
    if cookie:
        request.append((b"cookie", b"a=b"))
    if origin is not None:
        request.append((b"origin", origin.encode()))

    def starlette(app: Any) -> Any:
        return CORSMiddleware(
            app,
            allow_origins=allow,
            allow_methods=["GET", "POST", "DELETE"],
            allow_credentials=credentials,
            expose_headers=expose,
        )

    def ours(app: Any) -> Any:
        return DataRouteCors(
            app, allow_origins=allow, allow_credentials=credentials, expose_headers=expose
        )

    assert _start_headers(ours, request, raw) == _start_headers(starlette, request, raw)
