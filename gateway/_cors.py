"""CORS response headers for the data routes, as Starlette's ``CORSMiddleware`` writes them.

The data routes only ever see POSTs: preflights (OPTIONS) go to the FastAPI app, whose
``CORSMiddleware`` answers them. What is left for a data request is the simple-request half:
add the policy's headers to the response. Starlette's middleware does that by building header
objects over the request and the response and scanning them a dozen times: 17-19 µs per request
on the shared 2-core machine, nearly all of the 0.02 ms the benchmark's CORS case allows; this
writes the same headers with one pass over each, 4-9 µs. ``tests/gateway/test_cors.py`` holds it
to Starlette's output for random policies, origins and response headers, so a Starlette upgrade
that changes what it writes shows up there.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALLOW_ORIGIN = b"access-control-allow-origin"
_VARY = b"vary"


class DataRouteCors:
    """Wraps the data router's lean handler (``DataRouter.wrap``). Takes the options of
    Starlette's ``CORSMiddleware`` that ``server.cors`` sets, less those only preflights use."""

    __slots__ = ("_allow_all", "_app", "_credentials", "_origins", "_simple")

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_origins: Collection[str],
        allow_credentials: bool = False,
        expose_headers: Collection[str] = (),
    ) -> None:
        self._app = app
        self._allow_all = "*" in allow_origins
        self._origins = frozenset(o.encode("latin-1") for o in allow_origins)
        self._credentials = allow_credentials
        simple: list[tuple[bytes, bytes]] = []
        if self._allow_all:
            simple.append((_ALLOW_ORIGIN, b"*"))
        if allow_credentials:
            simple.append((b"access-control-allow-credentials", b"true"))
        if expose_headers:
            simple.append(
                (b"access-control-expose-headers", ", ".join(expose_headers).encode("latin-1"))
            )
        self._simple = simple

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"origin":
                origin = value
                break
        # A request with an Origin gets the policy's own headers, and its origin named when it
        # is a listed one (or when credentials go with "*"); every answer varies on Origin.
        items = [] if origin is None else list(self._simple)
        if origin is not None and (
            self._credentials if self._allow_all else origin in self._origins
        ):
            items.append((_ALLOW_ORIGIN, origin))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message.get("headers", ()), items)
            await send(message)

        await self._app(scope, receive, send_with_cors)


def _with_headers(
    raw: Collection[tuple[bytes, bytes]], items: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``raw`` after setting each of ``items`` then ``vary`` as ``MutableHeaders`` item
    assignment does: a name already there is replaced where it first appears (later copies
    dropped), a new one is appended."""
    out = list(raw)
    vary = [v for k, v in out if k == _VARY]
    vary.append(b"Origin")
    present = {k for k, _ in out}
    for key, value in (*items, (_VARY, b", ".join(vary))):
        if key not in present:
            out.append((key, value))
            present.add(key)
            continue
        at = [i for i, (k, _) in enumerate(out) if k == key]
        out[at[0]] = (key, value)
        for i in reversed(at[1:]):
            del out[i]
    return out
