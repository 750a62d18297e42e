"""A small local log of variant requests and feedback, read by ``llmops ab report``.

One JSON object per line. The request path only appends a tuple (a request, in
``REQUEST_FIELDS`` order) or a dict (feedback) to a list; a background task turns them into
JSON and writes them out every second in a worker thread, so no request waits on the disk.
Without Langfuse this is the record of who was served what, and how it went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("llmops.gateway.variants")

REQUEST_FIELDS = ("ts", "alias", "variant", "forced", "request_id", "route", "status",
                  "latency_s", "ttft_s", "prompt_tokens", "completion_tokens", "key", "prompt",
                  "prompt_version", "cost_usd")  # fmt: skip
Event = dict[str, Any] | tuple[Any, ...]


def as_record(e: Event) -> dict[str, Any]:
    if isinstance(e, dict):
        return e
    d = dict(zip(REQUEST_FIELDS, e, strict=True))
    d["kind"] = "request"
    d["ts"] = round(d["ts"], 3)
    d["latency_s"] = round(d["latency_s"], 5)
    if d["ttft_s"] is not None:
        d["ttft_s"] = round(d["ttft_s"], 5)
    return d


class EventLog:
    def __init__(self, path: Path, flush_interval_s: float = 1.0, max_buffer: int = 100_000):
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.dropped = 0
        self.written = 0
        self._buffer: list[Event] = []
        self._task: asyncio.Task[None] | None = None

    def append(self, event: Event) -> None:
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        self._buffer.append(event)

    def _write(self, events: list[Event]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(orjson.dumps(as_record(e)) + b"\n" for e in events)
        with self.path.open("ab") as f:
            f.write(data)
        self.written += len(events)

    async def flush(self) -> None:
        if not self._buffer:
            return
        events, self._buffer = self._buffer, []
        try:
            await asyncio.to_thread(self._write, events)
        except OSError as e:
            self.dropped += len(events)
            log.warning("variant event log %s: %s (%d records dropped)", self.path, e, len(events))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="variant-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.flush()
