"""Edge protections that sit below the request path: CORS and a bound on header size.

uvicorn's httptools protocol buffers request lines and headers without any limit (a 10 MB
header is accepted); ``bounded_httptools`` returns a protocol class that answers 431 and
closes the connection once the request line plus headers exceed ``max_header_bytes``.
Pass it as ``uvicorn.run(..., http=bounded_httptools(cfg.server.max_header_bytes))``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from gateway._app import GatewayApp

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_BODY = (
    b'{"error":{"message":"The request line and headers are larger than the gateway allows.",'
    b'"type":"invalid_request_error","param":null,"code":"headers_too_large"}}'
)
_EXPOSE = ["x-request-id", "retry-after"] + [
    f"x-ratelimit-{what}-{dim}"
    for what in ("limit", "remaining", "reset")
    for dim in ("requests", "tokens")
]


def install_cors(gw: GatewayApp) -> None:
    """Add CORS only when origins are configured; off by default (no headers, no preflight).

    One policy, two entries: Starlette's ``CORSMiddleware`` on the FastAPI app (its routes, and
    every preflight, data paths' included) and ``DataRouteCors`` around the data router's lean
    handlers, which never pass through FastAPI's middleware stack.
    """
    cors = gw.config.server.cors
    if not cors.allow_origins:
        return
    from starlette.middleware.cors import CORSMiddleware

    from gateway._cors import DataRouteCors

    gw.app.add_middleware(
        CORSMiddleware,  # type: ignore[arg-type]
        allow_origins=cors.allow_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=cors.allow_headers,
        allow_credentials=cors.allow_credentials,
        expose_headers=_EXPOSE,
        max_age=cors.max_age_s,
    )
    gw.data_router.wrap(
        DataRouteCors,
        allow_origins=cors.allow_origins,
        allow_credentials=cors.allow_credentials,
        expose_headers=_EXPOSE,
    )


class _BoundedHttpTools(HttpToolsProtocol):
    max_header_bytes = 64 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._hdr_bytes = 0
        self._in_headers = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._hdr_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a body that arrives in the same read as the headers must
        # not count; only a header section still incomplete past the limit is refused.
        if self._in_headers and self._hdr_bytes > self.max_header_bytes:
            self._in_headers = False
            if not self.transport.is_closing():
                self.transport.write(_431 % (len(_BODY), _BODY))
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._hdr_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers = True


def bounded_httptools(max_header_bytes: int) -> Any:
    """A uvicorn ``http`` protocol class bounding request line + headers."""
    return type("BoundedHttpTools", (_BoundedHttpTools,), {"max_header_bytes": max_header_bytes})
