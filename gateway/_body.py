"""Writing a request body for the replica: the model's served name, the rest as the client sent it.

The proxy only has to change ``model`` (an alias or the canonical name becomes the name the
replica serves). Re-encoding the parsed body for that would normalise what the client sent, and
fail outright on bodies orjson reads but cannot write: ``orjson.loads`` accepts 1024 levels of
nesting, ``orjson.dumps`` only ``MAX_ENCODE_DEPTH``. So the new name is spliced into the bytes
at the top-level key's value. Only a body that resolution rewrote (a prompt template), or whose
``model`` key cannot be found by its plain spelling, is encoded again, and one nested too deeply
for that is refused with a 400 naming the limit instead of failing as a 500.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway._errors import GatewayError

MAX_ENCODE_DEPTH = 254  # orjson.dumps refuses deeper nesting ("Recursion limit reached")

# A "model" key (top-level or nested) up to its value, and a JSON string value.
_MODEL_KEY = re.compile(rb'"model"[ \t\r\n]*:[ \t\r\n]*')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Every byte but quotes and brackets: deleted when only the structure of a prefix matters.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"{}[]')


def with_model(body: bytes, data: dict[str, Any], model: str, *, reencode: bool) -> bytes:
    """``body`` with its top-level ``model`` set to ``model``; ``data`` (its parse) gets it too.

    ``reencode`` (resolution changed ``data``) encodes ``data``; otherwise the bytes are
    spliced, falling back to encoding only where splicing cannot be exact.
    """
    data["model"] = model
    if not reencode:
        spliced = splice_model(body, model)
        if spliced is not None:
            return spliced
    return encode(data)


def encode(data: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError as e:
        if "Recursion" not in str(e):
            raise
        raise GatewayError(
            400,
            f"The request body nests JSON deeper than {MAX_ENCODE_DEPTH} levels, the most the "
            "gateway can encode again once it has rewritten the body (a prompt template).",
            code="body_too_deep",
        ) from None


def splice_model(body: bytes, model: str) -> bytes | None:
    """``body`` with the value of every top-level ``"model"`` key replaced, or None when that
    cannot be done exactly: the key spelled with escapes (each escaped letter of "model" starts
    with ``\\u006``), or a top-level ``model`` whose value is no string. JSON parsers disagree on
    which duplicate key wins, so all of them are replaced.
    """
    if b"\\u006" in body:
        return None
    spans: list[tuple[int, int]] = []
    for m in _MODEL_KEY.finditer(body):
        if not _top_level_key(body[: m.start()]):
            continue
        found = _STRING.match(body, m.end())
        if found is None:  # a duplicate holding a number, an object...: not ours to guess
            return None
        spans.append(found.span())
    if not spans:
        return None
    new = orjson.dumps(model)
    parts: list[bytes] = []
    pos = 0
    for start, end in spans:
        parts += (body[pos:start], new)
        pos = end
    parts.append(body[pos:])
    return b"".join(parts)


def _top_level_key(head: bytes) -> bool:
    """Whether a string starting right after ``head`` (a prefix of a JSON object) is outside
    every string and directly inside the outermost object, i.e. one of its keys.

    Only quotes and brackets matter once escaped backslashes and quotes are gone; strings are
    then ``"[^"]*"``. Strings without brackets in them pair off as adjacent quotes; a prefix
    with brackets inside strings takes the exact (slower) split into inside and outside.
    """
    outside = head
    if b'"' in head:
        if b"\\" in head:
            head = head.replace(b"\\\\", b"").replace(b'\\"', b"")
        marks = head.translate(None, _NOT_STRUCTURE)
        outside = marks.replace(b'""', b"")
        if b'"' in outside:
            pieces = marks.split(b'"')
            if len(pieces) % 2 == 0:  # an odd number of quotes: the match starts inside a string
                return False
            outside = b"".join(pieces[::2])
    opened = outside.count(b"{") + outside.count(b"[")
    return opened - outside.count(b"}") - outside.count(b"]") == 1
