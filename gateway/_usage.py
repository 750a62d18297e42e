"""Token usage read from upstream responses without decoding every streamed chunk."""

from __future__ import annotations

import re
from typing import Any

import orjson

# Chunks carrying ``"usage": null`` (or none) are skipped without decoding.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


def usage_from_body(body: bytes) -> dict[str, Any] | None:
    if b'"usage"' not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = data.get("usage") if isinstance(data, dict) else None
    return usage if isinstance(usage, dict) else None


class StreamUsageScanner:
    """Finds the ``usage`` object in an SSE stream (sent when ``include_usage`` is set).

    Only chunks that mention ``"usage"`` with an object value are split into lines and
    decoded; the common chunk costs one substring search.
    """

    __slots__ = ("_tail", "usage")

    def __init__(self) -> None:
        self._tail = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n") + 1
        # The incomplete last line waits for the next chunk (SSE lines are short).
        self._tail = data[cut:] if len(data) - cut < 1 << 20 else b""
        if _USAGE_OBJECT.search(data, 0, cut) is None:
            return
        for line in data[:cut].split(b"\n"):
            if line.startswith(b"data:") and _USAGE_OBJECT.search(line):
                self._parse(line[5:].strip())

    def finish(self) -> None:
        if self._tail.startswith(b"data:") and _USAGE_OBJECT.search(self._tail):
            self._parse(self._tail[5:].strip())
        self._tail = b""

    def _parse(self, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        usage = obj.get("usage") if isinstance(obj, dict) else None
        if isinstance(usage, dict):
            self.usage = usage
