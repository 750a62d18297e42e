"""Token usage read from upstream responses without decoding every streamed chunk.

Usage is handed on in chat completions' field names whatever the route: a Responses API usage
(``input_tokens`` / ``output_tokens``, and their ``*_details``) is translated on reading, so
limits, budgets, metrics and traces read one shape.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import orjson

from gateway._body import _top_level_key

if TYPE_CHECKING:
    from gateway._context import RequestContext

# Chunks carrying ``"usage": null`` (or none) are skipped without decoding.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# A Responses stream ends with one of these events (never ``[DONE]``). JSON strings escape
# their quotes, so the pattern cannot match inside generated text.
_TERMINAL = re.compile(rb'"type"\s*:\s*"(?:response\.(?:completed|failed|incomplete)|error)"')
_CREATED = re.compile(rb'"type"\s*:\s*"response\.created"')
_ID_KEY = re.compile(rb'"id"\s*:\s*')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_RESPONSES_NAMES = (
    ("input_tokens", "prompt_tokens"),
    ("output_tokens", "completion_tokens"),
    ("total_tokens", "total_tokens"),
    ("input_tokens_details", "prompt_tokens_details"),
    ("output_tokens_details", "completion_tokens_details"),
)


def chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """``usage`` in chat completions' names (a chat or embeddings usage comes back as is)."""
    if "prompt_tokens" in usage or ("input_tokens" not in usage and "output_tokens" not in usage):
        return usage
    return {new: usage[old] for old, new in _RESPONSES_NAMES if usage.get(old) is not None}


def usage_from_body(body: bytes) -> dict[str, Any] | None:
    if b'"usage"' not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = data.get("usage") if isinstance(data, dict) else None
    return chat_usage(usage) if isinstance(usage, dict) else None


def response_id_from_body(body: bytes) -> str | None:
    """The top-level ``id`` of a Responses API body, found without decoding the body (it is
    the first key in vLLM's and OpenAI's bodies; nested items' ids are skipped)."""
    for m in _ID_KEY.finditer(body):
        if not _top_level_key(body[: m.start()]):
            continue
        value = _STRING.match(body, m.end())
        if value is None:
            return None
        try:
            rid = orjson.loads(value.group())
        except orjson.JSONDecodeError:
            return None
        return rid if isinstance(rid, str) and rid else None
    return None


def estimate_tokens(
    ctx: RequestContext, chars_per_token: float, default_completion: int
) -> tuple[int, int]:
    """(prompt, completion) tokens a request may use, before it runs: its body's bytes over
    ``chars_per_token``, and ``max_tokens`` (or ``default_completion``) times ``n``."""
    data = ctx.data or {}
    out: Any = (
        data.get("max_completion_tokens")
        or data.get("max_tokens")
        or data.get("max_output_tokens")  # the Responses API's name
    )
    if ctx.route == "embeddings":
        out = 0
    elif not isinstance(out, int) or out < 0:
        out = default_completion
    n = data.get("n")
    if isinstance(n, int) and 1 < n <= 128:
        out *= n
    return math.ceil(len(ctx.body) / chars_per_token), out


def stream_scanner(ctx: RequestContext) -> StreamUsageScanner:
    """The scanner for a relayed stream of ``ctx``'s route."""
    if ctx.route == "responses":
        return ResponsesStreamScanner(ctx.extensions)
    return StreamUsageScanner()


class StreamUsageScanner:
    """Finds the ``usage`` object in an SSE stream (sent when ``include_usage`` is set).

    Only chunks that mention ``"usage"`` with an object value are split into lines and
    decoded; the common chunk costs one substring search. ``ended`` stays False: a chat or
    completions stream ends with ``[DONE]``, which the relay looks for itself.

    ``deltas`` counts the ``"delta"`` fields relayed (a chat chunk's, a Responses text delta
    event's; about one generated token each): what a stream cut before its usage is charged.
    """

    __slots__ = ("_tail", "deltas", "ended", "usage")

    def __init__(self) -> None:
        self._tail = b""
        self.usage: dict[str, Any] | None = None
        self.ended = False
        self.deltas = 0

    def relayed_tokens(self) -> int:
        """Generated tokens relayed, as far as the chunks tell (a chat stream's first chunk
        carries only the role)."""
        return max(0, self.deltas - 1)

    def _lines(self, chunk: bytes) -> tuple[bytes, int]:
        """(data, cut): ``data[:cut]`` holds the complete lines so far; the incomplete last line
        waits for the next chunk (SSE lines are short). No copy: searches take the bounds."""
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:] if len(data) - cut < 1 << 20 else b""
        return data, cut

    def _scan(self, data: bytes, pattern: re.Pattern[bytes]) -> None:
        """Decode the ``data:`` lines of ``data`` that ``pattern`` finds in."""
        for line in data.split(b"\n"):
            if line.startswith(b"data:") and pattern.search(line):
                self._event(line[5:].strip())

    def feed(self, chunk: bytes) -> None:
        self.deltas += chunk.count(b'"delta"')
        data, cut = self._lines(chunk)
        if _USAGE_OBJECT.search(data, 0, cut) is not None:
            self._scan(data[:cut], _USAGE_OBJECT)

    def finish(self) -> None:
        tail, self._tail = self._tail, b""
        self._scan(tail, _USAGE_OBJECT)

    def _event(self, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        usage = obj.get("usage") if isinstance(obj, dict) else None
        if isinstance(usage, dict):
            self.usage = usage


class ResponsesStreamScanner(StreamUsageScanner):
    """A Responses API stream: the response id from ``response.created`` (the first event),
    usage from the terminal event's ``response.usage``, and ``ended`` once that event is in.

    Two lines are decoded per stream; every other chunk costs a search or two. The id goes to
    ``extensions["response_id"]`` as soon as it is seen.
    """

    __slots__ = ("_extensions",)

    def __init__(self, extensions: dict[str, Any]) -> None:
        super().__init__()
        self._extensions = extensions

    def feed(self, chunk: bytes) -> None:
        self.deltas += chunk.count(b'"delta"')
        data, cut = self._lines(chunk)
        want_id = "response_id" not in self._extensions
        if want_id and _CREATED.search(data, 0, cut) is not None:
            self._scan(data[:cut], _CREATED)
        if not self.ended and _TERMINAL.search(data, 0, cut) is not None:
            self._scan(data[:cut], _TERMINAL)

    def finish(self) -> None:
        tail, self._tail = self._tail, b""
        if not self.ended and _TERMINAL.search(tail):
            self._scan(tail, _TERMINAL)

    def _event(self, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        response = obj.get("response")
        if not isinstance(response, dict):
            response = {}
        rid = response.get("id")
        if isinstance(rid, str) and rid:
            self._extensions.setdefault("response_id", rid)
        if kind == "response.created":
            return
        self.ended = True
        usage = response.get("usage")
        if isinstance(usage, dict):
            self.usage = chat_usage(usage)

    def relayed_tokens(self) -> int:
        return self.deltas  # every Responses event with a "delta" field is a text delta
