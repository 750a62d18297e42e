"""A fake vLLM whose answers depend on the rendered prompt, so a damaged prompt answers worse.

Generation: looks the question up in a table of capitals and answers correctly only when the
system message still carries the instruction ``GOOD_INSTRUCTION``; otherwise it rambles. Judge
requests (ragas sends ``response_format``/tools or asks for JSON) get ``judge_reply`` verbatim, so a
test can make the judge return garbage; with ``judge_reply = "faithful"`` it returns minimal valid
answers to ragas' faithfulness prompts (every statement supported). Every body is recorded.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import free_port
from tests.fakes.threaded_app import ThreadedApp

GOOD_INSTRUCTION = "Reply with the name of the capital city only."
CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Austria": "Vienna",
    "Poland": "Warsaw",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Greece": "Athens",
    "Ireland": "Dublin",
    "Hungary": "Budapest",
    "Denmark": "Copenhagen",
    "Belgium": "Brussels",
    "Egypt": "Cairo",
}


def _is_judge(body: dict[str, Any]) -> bool:
    if body.get("response_format") or body.get("tools"):
        return True
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    return "json" in text.lower() and "capital" not in text.lower()


@dataclass
class TableUpstream(ThreadedApp):
    judge_reply: str = "this is not JSON at all"
    delay_s: float = 0.0
    # countries answered with HTTP 400, as vLLM answers a prompt longer than the context (a 5xx
    # would make the gateway eject the replica and fail the other cases too)
    fail_for: set[str] = field(default_factory=set)
    weak_models: set[str] = field(default_factory=lambda: {"weak"})  # always ramble
    port: int = field(default_factory=free_port)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def generation_requests(self) -> list[dict[str, Any]]:
        return [b for b in self.requests if not _is_judge(b)]

    def answer(self, body: dict[str, Any]) -> str:
        msgs = body.get("messages") or []
        system = " ".join(m["content"] for m in msgs if m.get("role") == "system")
        user = msgs[-1]["content"] if msgs else ""
        m = re.search(r"capital of (\w+)", user)
        country = m.group(1) if m else ""
        weak = body.get("model") in self.weak_models
        if GOOD_INSTRUCTION in system and country in CAPITALS and not weak:
            return CAPITALS[country]
        return f"Well, {country} is a country with a long history and many cities."

    def judge(self, body: dict[str, Any]) -> str:
        if self.judge_reply != "faithful":
            return self.judge_reply
        system = str((body.get("messages") or [{}])[0].get("content", ""))
        if "NLIStatementOutput" in system:
            return '{"statements": [{"statement": "s", "reason": "stated", "verdict": 1}]}'
        if "StatementGeneratorOutput" in system:
            return '{"statements": ["s"]}'
        return "unexpected judge prompt"

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _chat(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        last = str((body.get("messages") or [{}])[-1].get("content", ""))
        if any(f"capital of {c}?" in last for c in self.fail_for):
            return web.json_response(
                {"error": {"message": "prompt too long", "type": "BadRequestError"}}, status=400
            )
        text = self.judge(body) if _is_judge(body) else self.answer(body)
        return web.json_response(
            {
                "id": "chatcmpl-table",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "?"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": 20,
                    "completion_tokens": len(text.split()),
                    "total_tokens": 20 + len(text.split()),
                },
            }
        )

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app
