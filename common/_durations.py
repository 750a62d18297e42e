"""Durations as people type them on a command line or in a query: 90s, 10m, 24h, 7d."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_s(text: str, bare: str = "s") -> float:
    """Seconds in ``text``; a bare number is in unit ``bare``. ValueError names the input."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r}: expected a duration such as 30s, 10m, 24h or 7d")
    return float(m.group(1)) * _UNIT_S[m.group(2) or bare]
