"""A small local log of variant requests and feedback, read by ``llmops ab report``.

One JSON object per line. The request path only appends a dict to a list; a background task
writes the list out every second in a worker thread, so no request waits on the disk.
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


class EventLog:
    def __init__(self, path: Path, flush_interval_s: float = 1.0, max_buffer: int = 100_000):
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.dropped = 0
        self.written = 0
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def append(self, event: dict[str, Any]) -> None:
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        self._buffer.append(event)

    def _write(self, events: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(orjson.dumps(e) + b"\n" for e in events)
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
