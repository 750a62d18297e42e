"""A pass-through HTTP proxy in front of a real engine that can be told to fail: the fault
injection of the rollout tests (a vLLM replica cannot be made to answer 500 on demand)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.openai_upstream import free_port
from tests.fakes.threaded_app import ThreadedApp


@dataclass
class FaultProxy(ThreadedApp):
    """``mode``: ok (relay to ``target``) | error500 (answer 500 to every API request; the
    health check still passes, as for an engine that is up but failing requests)."""

    target: str
    mode: str = "ok"
    port: int = field(default_factory=free_port)
    relayed: int = 0
    failed: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: Any = None
    _session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "error500" and request.path.startswith("/v1/"):
            self.failed += 1
            return web.json_response(
                {"error": {"message": "injected fault", "type": "InternalServerError",
                           "code": 500}}, status=500,
            )  # fmt: skip
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as up:
            resp = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            })  # fmt: skip
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
        self.relayed += 1
        return resp

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)

        async def close(_: web.Application) -> None:
            if self._session is not None:
                await self._session.close()

        app.on_cleanup.append(close)
        return app
