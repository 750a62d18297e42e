"""The gateway's ASGI entry: data routes by exact path from a dict, everything else to FastAPI.

The data routes (chat, completions, embeddings) carry nearly all the traffic, and for a small
request Starlette's middleware stack and router cost about as much CPU as the proxy's own work.
So they are dispatched here, before FastAPI, and stay so whatever middleware the FastAPI app
gets: a middleware added to the app wraps the FastAPI routes only, and what the data path needs
at the edge (CORS) wraps the lean handler through ``wrap``. Adding a middleware therefore never
moves a data request onto another code path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway._errors import GatewayError, error_response

log = logging.getLogger("llmops.gateway")

DataHandler = Callable[[Request], Awaitable[Response]]


class DataRouter:
    """POSTs to a path in ``routes`` go to its handler; every other request to ``fallback``.

    Only POST is dispatched here: other methods on a data path (a CORS preflight, a GET that
    earns a 405) take the FastAPI app, which answers them as for any of its routes.
    """

    __slots__ = ("_app", "_fallback", "routes")

    def __init__(self, fallback: ASGIApp) -> None:
        self.routes: dict[str, DataHandler] = {}
        self._fallback = fallback
        self._app: ASGIApp = self._serve

    def wrap(self, middleware: Callable[..., ASGIApp], **options: Any) -> None:
        """Put an ASGI middleware (``middleware(app, **options)``) around the data handlers only.

        The FastAPI routes get theirs with ``app.add_middleware``; a concern both need (CORS) is
        added to both.
        """
        self._app = middleware(self._app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.routes:
            await self._app(scope, receive, send)
        else:
            await self._fallback(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await self.routes[scope["path"]](request)
        except Exception:
            # The proxy answers every GatewayError itself; this is a bug, not a client error.
            log.exception("unexpected error on %s", scope["path"])
            response = error_response(
                GatewayError(500, "The gateway hit an internal error.", code="internal_error"),
                request.headers.get("x-request-id"),
            )
        await response(scope, receive, send)
