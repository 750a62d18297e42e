"""The gateway's error bodies as the CLIs read them: OpenAI's ``{"error": {"message", "code"}}``,
or the start of whatever else came back (a proxy's HTML page, a plain-text 502)."""

from __future__ import annotations

from typing import Any


def error_of(response: Any, limit: int = 300) -> tuple[str, str | None]:
    """(message, code) of an HTTP error response (httpx's or any with ``json()``/``text``)."""
    try:
        err = response.json()["error"]
        return str(err["message"]), err.get("code")
    except (ValueError, KeyError, TypeError):
        return response.text[:limit], None
