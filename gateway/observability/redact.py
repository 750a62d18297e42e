"""Redaction of text before it leaves the gateway (traces, drift samples).

One alternation regex compiled once; applied in the background threads, never on the request
path. Truncation keeps a single huge prompt (or a base64 image) from bloating an export batch.
"""

from __future__ import annotations

import re

from gateway.observability.config import RedactionConfig

# Structural fields of messages and content parts: never user text, kept so traces stay readable.
_STRUCTURAL = frozenset({"role", "type", "name", "id", "tool_call_id", "finish_reason", "detail"})


class Redactor:
    def __init__(self, config: RedactionConfig) -> None:
        self.mode = config.mode
        self.replacement = config.replacement
        self.max_chars = config.max_chars
        patterns = [f"(?:{p})" for p in config.patterns]
        self._rx = re.compile("|".join(patterns)) if patterns else None

    @property
    def drops_text(self) -> bool:
        return self.mode == "full"

    def text(self, s: str) -> str:
        """The string as it may be exported."""
        if self.mode == "full":
            return self.replacement if s else s
        if self.mode == "patterns" and self._rx is not None:
            s = self._rx.sub(self.replacement, s)
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
