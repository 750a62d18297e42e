"""A fast fake vLLM OpenAI server on loopback, with switchable faults.

Used where the real engine is not the point (routing, retries, errors, streaming relay).
Real-engine tests live in tests/engine/.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.threaded_app import ThreadedApp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeUpstream(ThreadedApp):
    """``mode``: ok | error500 | error503 | hang | truncate | garbage | slow_stream."""

    name: str = "fake"
    mode: str = "ok"
    healthy: bool = True
    stream_chunks: int = 5
    chunk_delay_s: float = 0.0
    eof_delay_s: float = 0.0
    port: int = field(default_factory=free_port)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    cancelled: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    # --- handlers -------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _fault(self) -> web.StreamResponse | None:
        if self.mode == "error500":
            return web.json_response(
                {"error": {"message": "boom", "type": "InternalServerError", "code": 500}},
                status=500,
            )
        if self.mode == "error503":
            return web.json_response({"error": {"message": "busy", "type": "x"}}, status=503)
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "garbage":
            return web.Response(body=b"\x00not json{{", content_type="application/json")
        return None

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers_seen.append({k.lower(): v for k, v in request.headers.items()})
        return body

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        fault = await self._fault()
        if fault is not None:
            return fault
        last = body["messages"][-1]["content"] if body.get("messages") else ""
        text = f"[{self.name}] echo: {last}"
        if body.get("stream"):
            return await self._stream(request, body, text, chat=True)
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        fault = await self._fault()
        if fault is not None:
            return fault
        text = f"[{self.name}] completion"
        if body.get("stream"):
            return await self._stream(request, body, text, chat=False)
        return web.json_response(
            {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        fault = await self._fault()
        if fault is not None:
            return fault
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response(
            {
                "object": "list",
                "model": body["model"],
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1, 0.2, float(i)]}
                    for i in range(len(inputs))
                ],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str, chat: bool
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        words = text.split(" ")
        n = max(self.stream_chunks, 1)
        try:
            for i in range(n):
                piece = (words[i] if i < len(words) else "") + " "
                if chat:
                    choice: dict[str, Any] = {"index": 0, "delta": {"content": piece},
                                              "finish_reason": None}  # fmt: skip
                    obj = "chat.completion.chunk"
                else:
                    choice = {"index": 0, "text": piece, "finish_reason": None}
                    obj = "text_completion"
                chunk = {"id": "c1", "object": obj, "created": 1, "model": body["model"],
                         "choices": [choice]}  # fmt: skip
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if self.mode == "truncate" and i == 1:
                    # Die mid-stream: drop the connection without the terminating chunk.
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
                final = {"id": "c1", "object": obj, "created": 1, "model": body["model"],
                         "choices": [], "usage": usage}  # fmt: skip
                await resp.write(b"data: " + orjson.dumps(final) + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            if self.eof_delay_s:  # the body's end lags its [DONE] (a slow proxy on the way)
                await asyncio.sleep(self.eof_delay_s)
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise
        return resp

    # --- lifecycle ------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app
