"""Redaction of text before it leaves the gateway (traces, drift samples).

Patterns are compiled once and applied in the background threads, never on the request path.
The default patterns run behind cheap necessary conditions (an ``@`` for e-mail addresses, a
run of digits for cards, phones and IPs...): most text holds none, and scanning every message
with every pattern was a tenth of tracing's CPU per request. Truncation keeps a single huge
prompt from bloating an export batch, and base64 data URIs (images, audio) become a short
placeholder naming their type and size.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from observability._config import DEFAULT_REDACTION_PATTERNS, RedactionConfig

_EMAIL, _KEY, _BEARER, _CARD, _PHONE, _IPV4 = DEFAULT_REDACTION_PATTERNS
# Every match of a card, phone or IPv4 pattern contains such a run (7+ chars, digits at both
# ends, only digits and separators between), so one scan decides for all three.
_digit_run = re.compile(r"\d[\d ().+-]{5,}\d").search


def _has_key_prefix(s: str) -> bool:
    return "k-" in s or "f-" in s  # sk-, pk-, rk-, lf-


def _has_bearer(s: str) -> bool:
    return "earer" in s.lower()


def _has_at(s: str) -> bool:
    return "@" in s


_DATA_URI = re.compile(r"data:([\w.+/-]{1,100});base64,([A-Za-z0-9+/=]+)")


def _data_uri_placeholder(m: re.Match[str]) -> str:
    return f"data:{m.group(1)};base64,[{len(m.group(2)) * 3 // 4} bytes not traced]"


_GUARDS: dict[str, Callable[[str], object]] = {
    _EMAIL: _has_at,
    _KEY: _has_key_prefix,
    _BEARER: _has_bearer,
    _CARD: _digit_run,
    _PHONE: _digit_run,
    _IPV4: _digit_run,
}

# Structural fields of messages and content parts: never user text, kept so traces stay readable.
_STRUCTURAL = frozenset({"role", "type", "name", "id", "tool_call_id", "finish_reason", "detail"})


class Redactor:
    def __init__(self, config: RedactionConfig) -> None:
        self.mode = config.mode
        self.replacement = config.replacement
        self.max_chars = config.max_chars
        # (guard, patterns behind it): a user's own pattern has no guard and always runs.
        groups: dict[Callable[[str], object] | None, list[re.Pattern[str]]] = {}
        for p in config.patterns:
            groups.setdefault(_GUARDS.get(p), []).append(re.compile(p))
        self._groups = list(groups.items())

    @property
    def drops_text(self) -> bool:
        return self.mode == "full"

    def text(self, s: str) -> str:
        """The string as it may be exported."""
        if self.mode == "full":
            return self.replacement if s else s
        if "base64," in s:
            s = _DATA_URI.sub(_data_uri_placeholder, s)
        if self.mode == "patterns":
            for guard, patterns in self._groups:
                if guard is None or guard(s):
                    for rx in patterns:
                        s = rx.sub(self.replacement, s)
        if self.max_chars and len(s) > self.max_chars:
            s = s[: self.max_chars] + f"...[truncated {len(s) - self.max_chars} chars]"
        return s

    def value(self, obj: object) -> object:
        """A JSON-like value with every string redacted (structure, numbers, keys kept)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if isinstance(obj, dict):
            return {
                k: v if k in _STRUCTURAL and isinstance(v, str) else self.value(v)
                for k, v in obj.items()
            }
        return obj
