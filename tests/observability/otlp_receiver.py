"""A tiny Langfuse ingestion endpoint on loopback: OTLP/HTTP traces and score batches.

``mode="ok"`` decodes and keeps what arrives; ``mode="hang"`` accepts the connection and never
answers (a Langfuse that is down in the worst way: the exporter waits for its timeout).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fakes.openai_upstream import free_port
from tests.fakes.threaded_app import ThreadedApp


@dataclass
class Receiver(ThreadedApp):
    shutdown_timeout: ClassVar[float] = 0.5

    mode: str = "ok"
    port: int = field(default_factory=free_port)
    spans: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    routes: list[tuple[str, str, Any]] = field(default_factory=list)  # extra (method, path, fn)
    pending: int = 0
    received_posts: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        self.received_posts += 1
        self.auth.append(request.headers.get("authorization", ""))
        if self.mode == "hang":
            self.pending += 1
            try:
                await asyncio.sleep(3600)
            finally:
                self.pending -= 1
        body = await request.read()
        if body[:2] == b"\x1f\x8b":  # aiohttp usually inflates gzip bodies already
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs: dict[str, Any] = {}
                    for kv in s.attributes:
                        v = kv.value
                        kind = v.WhichOneof("value")
                        if kind == "array_value":
                            attrs[kv.key] = [
                                getattr(x, x.WhichOneof("value")) for x in v.array_value.values
                            ]
                        else:
                            attrs[kv.key] = getattr(v, kind) if kind else None
                    self.spans.append(
                        {
                            "name": s.name,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "scope": ss.scope.name,
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "attributes": attrs,
                        }
                    )
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    async def _scores(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        items = body.get("scores") if isinstance(body, dict) else body
        items = items if isinstance(items, list) else [body]
        self.scores.extend(items)
        return web.json_response(
            {"successes": [{"id": s.get("id")} for s in items], "errors": []}, status=200
        )

    async def _any(self, request: web.Request) -> web.Response:
        return web.json_response({}, status=200)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/public/otel/v1/traces", self._traces)
        app.router.add_post("/api/public/scores", self._scores)
        for method, path, fn in self.routes:
            app.router.add_route(method, path, fn)
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app
