"""A fast fake vLLM OpenAI server on loopback, with switchable faults.

Used where the real engine is not the point (routing, retries, errors, streaming relay).
Real-engine tests live in tests/engine/.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
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
    """``mode``: ok | error500 | error503 | hang | truncate | garbage | slow_stream.

    ``/v1/responses`` answers as vLLM 0.32 does, in OpenAI's shapes: responses are kept (for
    ``GET /v1/responses/{id}`` and ``previous_response_id``) only with ``responses_store`` on,
    as vLLM does only with ``VLLM_ENABLE_RESPONSES_API_STORE=1``; otherwise those answer vLLM's
    404. ``tool_choice`` "required" (or a named function) makes a ``function_call`` item whose
    required string arguments hold the user's text; "auto" answers a message, as SmolLM2 does.
    """

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
    responses_store: bool = False
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_id: list[tuple[str, str]] = field(default_factory=list)  # (method, response id) asked
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

    # --- the Responses API ------------------------------------------------------------------
    @staticmethod
    def _vllm_error(message: str, param: str | None, status: int) -> web.Response:
        # vLLM's ErrorResponse: its ``code`` is the HTTP status, an integer.
        err = {"message": message, "type": "invalid_request_error", "param": param, "code": status}
        return web.json_response({"error": err}, status=status)

    def _not_found(self, rid: str) -> web.Response:
        return self._vllm_error(f"Response with id '{rid}' not found.", "response_id", 404)

    @staticmethod
    def _user_text(body: dict[str, Any]) -> tuple[str, str | None]:
        """(the last user text, the last function_call_output) of ``input``."""
        value = body.get("input")
        if isinstance(value, str):
            return value, None
        text, tool_output = "", None
        for item in value if isinstance(value, list) else ():
            if not isinstance(item, dict):
                continue
            if item.get("type") == "function_call_output":
                tool_output = str(item.get("output"))
            elif item.get("role") == "user":
                content = item.get("content")
                if isinstance(content, list):
                    content = " ".join(
                        str(p.get("text")) for p in content if isinstance(p, dict) and "text" in p
                    )
                text, tool_output = str(content), None
        return text, tool_output

    def _response(
        self, body: dict[str, Any], rid: str, status: str, output: list[Any], usage: Any
    ) -> dict[str, Any]:
        return {
            "id": rid, "object": "response", "created_at": int(time.time()), "status": status,
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "model": body["model"], "output": output, "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"), "metadata": {},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
            "temperature": 1.0, "top_p": 1.0, "store": self.responses_store,
            "text": {"format": {"type": "text"}}, "truncation": "disabled",
            # vLLM (and OpenAI's own example) send "usage": null before the end; the spec's
            # Response has no null there, so the fake leaves it out.
            **({"usage": usage} if usage is not None else {}),
        }  # fmt: skip

    def _function_call(self, body: dict[str, Any], text: str) -> dict[str, Any] | None:
        choice = body.get("tool_choice")
        tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
        if not tools or not (choice == "required" or isinstance(choice, dict)):
            return None
        name = choice.get("name") if isinstance(choice, dict) else None
        tool = next((t for t in tools if t.get("name") == name), tools[0])
        params = tool.get("parameters") or {}
        args = {
            k: text
            for k in params.get("required", [])
            if (params.get("properties") or {}).get(k, {}).get("type") == "string"
        }
        return {"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:12],
                "call_id": "call_" + uuid.uuid4().hex[:12], "name": tool["name"],
                "arguments": orjson.dumps(args).decode(), "status": "completed"}  # fmt: skip

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        fault = await self._fault()
        if fault is not None:
            return fault
        if body.get("background") and not self.responses_store:
            return self._vllm_error(
                "This vLLM engine does not support `store=True` and therefore does not support "
                "the background mode. To enable these features, set the environment variable "
                "`VLLM_ENABLE_RESPONSES_API_STORE=1` when launching the vLLM server.",
                "background", 400,
            )  # fmt: skip
        prev = body.get("previous_response_id")
        if prev is not None and prev not in self.stored:
            return self._not_found(prev)
        text, tool_output = self._user_text(body)
        call = None if tool_output is not None else self._function_call(body, text)
        reply = f"[{self.name}] echo: {text}" if tool_output is None else f"tool said {tool_output}"
        if prev is not None:
            reply += f" (after {prev})"
        rid = "resp_" + uuid.uuid4().hex[:16]
        if body.get("stream"):
            return await self._responses_stream(request, body, rid, reply, call)
        msg_id = "msg_" + uuid.uuid4().hex[:12]
        item = call or self._message(msg_id, reply, "completed")
        usage = self._usage(7, 5)
        obj = self._response(body, rid, "completed", [item], usage)
        if self.responses_store and body.get("store", True):
            self.stored[rid] = obj
        return web.json_response(obj)

    @staticmethod
    def _message(msg_id: str, text: str | None, status: str) -> dict[str, Any]:
        content = [] if text is None else [
            {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        ]  # fmt: skip
        return {"id": msg_id, "type": "message", "role": "assistant", "status": status,
                "content": content}  # fmt: skip

    @staticmethod
    def _usage(inp: int, out: int) -> dict[str, Any]:
        return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": inp + out}  # fmt: skip

    async def _responses_stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        rid: str,
        reply: str,
        call: dict[str, Any] | None,
    ) -> web.StreamResponse:
        """OpenAI's event sequence: created, in_progress, output item and content part added,
        text deltas, the matching done events, completed (with usage)."""
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        seq = 0

        async def send(kind: str, **fields: Any) -> None:
            nonlocal seq
            event = {"type": kind, "sequence_number": seq, **fields}
            seq += 1
            await resp.write(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event)
                             + b"\n\n")  # fmt: skip

        msg_id = "msg_" + uuid.uuid4().hex[:12]
        n = max(self.stream_chunks, 1)
        words = reply.split(" ")
        pieces = [(words[i] if i < len(words) else "") + " " for i in range(n)]
        try:
            await send("response.created",
                       response=self._response(body, rid, "in_progress", [], None))  # fmt: skip
            await send("response.in_progress",
                       response=self._response(body, rid, "in_progress", [], None))  # fmt: skip
            if call is not None:
                item: dict[str, Any] = call
                await send("response.output_item.added", output_index=0,
                           item={**call, "arguments": "", "status": "in_progress"})  # fmt: skip
                await send("response.function_call_arguments.delta", item_id=call["id"],
                           output_index=0, delta=call["arguments"])  # fmt: skip
                await send("response.function_call_arguments.done", item_id=call["id"],
                           output_index=0, name=call["name"],
                           arguments=call["arguments"])  # fmt: skip
            else:
                text = "".join(pieces)
                item = self._message(msg_id, text, "completed")
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                await send("response.output_item.added", output_index=0,
                           item=self._message(msg_id, None, "in_progress"))  # fmt: skip
                await send("response.content_part.added", item_id=msg_id, output_index=0,
                           content_index=0, part=part)  # fmt: skip
                for i, piece in enumerate(pieces):
                    await send("response.output_text.delta", item_id=msg_id, output_index=0,
                               content_index=0, delta=piece, logprobs=[])  # fmt: skip
                    if self.mode == "truncate" and i == 1:
                        assert request.transport is not None
                        request.transport.close()
                        return resp
                    if self.chunk_delay_s:
                        await asyncio.sleep(self.chunk_delay_s)
                await send("response.output_text.done", item_id=msg_id, output_index=0,
                           content_index=0, text=text, logprobs=[])  # fmt: skip
                await send("response.content_part.done", item_id=msg_id, output_index=0,
                           content_index=0, part={**part, "text": text})  # fmt: skip
            await send("response.output_item.done", output_index=0, item=item)
            final = self._response(body, rid, "completed", [item], self._usage(7, n))
            if self.responses_store and body.get("store", True):
                self.stored[rid] = final
            await send("response.completed", response=final)
            if self.eof_delay_s:
                await asyncio.sleep(self.eof_delay_s)
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise
        return resp

    async def _retrieve(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        self.by_id.append(("GET", rid))
        obj = self.stored.get(rid)
        return self._not_found(rid) if obj is None else web.json_response(obj)

    async def _cancel(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        self.by_id.append(("cancel", rid))
        if rid not in self.stored:
            return self._not_found(rid)
        return self._vllm_error("Cannot cancel a synchronous response.", "response_id", 400)

    # --- lifecycle ------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/responses/{rid}", self._retrieve)
        app.router.add_post("/v1/responses/{rid}/cancel", self._cancel)
        return app
