"""Redaction: the guarded default patterns redact exactly what the plain patterns do."""

from __future__ import annotations

import re

import pytest

from observability._config import DEFAULT_REDACTION_PATTERNS, RedactionConfig
from observability._redact import Redactor

TEXTS = [
    "mail bob@example.com now",
    "two: a.b-c@mail.co.uk and x@y.io.",
    "key sk-abcdefgh12345678 and lf-ZZZZZZZZZZ, not sk-short",
    "Authorization: Bearer abc.def-ghi~jkl and BEARER   12345678XY",
    "card 4111 1111 1111 1111 or 4111-1111-1111-1111 or 4111111111111111",
    "call +44 (20) 7946-0958 or 020 7946 0958",
    "host 192.168.0.1, or 10.0.0.255; version 1.2.3 stays",
    "the meeting moves to Friday 10:00; Dana presents Q3 and 2 reports",
    "no secrets here at all",
    "",
    "mixed: bob@example.com, sk-abcdefgh12345678, 4111 1111 1111 1111, 10.1.2.3",
]


def _plain(text: str) -> str:
    """The unguarded reference: each default pattern applied in turn."""
    for p in DEFAULT_REDACTION_PATTERNS:
        text = re.sub(p, "[REDACTED]", text)
    return text


@pytest.mark.parametrize("text", TEXTS)
def test_guarded_defaults_match_plain_patterns(text: str) -> None:
    assert Redactor(RedactionConfig()).text(text) == _plain(text)


def test_what_is_redacted() -> None:
    r = Redactor(RedactionConfig())
    out = r.text(TEXTS[-1])
    assert out == "mixed: [REDACTED], [REDACTED], [REDACTED], [REDACTED]"
    assert r.text(TEXTS[7]) == TEXTS[7]  # times and short numbers stay


def test_user_patterns_always_run_and_modes() -> None:
    r = Redactor(RedactionConfig(patterns=[r"ticket-\d+"], replacement="#"))
    assert r.text("see ticket-42 and bob@example.com") == "see # and bob@example.com"
    assert Redactor(RedactionConfig(mode="none")).text("bob@example.com") == "bob@example.com"
    assert Redactor(RedactionConfig(mode="full")).text("anything") == "[REDACTED]"
    assert Redactor(RedactionConfig(max_chars=5)).text("abcdefgh") == "abcde...[truncated 3 chars]"


def test_data_uris_become_placeholders() -> None:
    img = "data:image/png;base64," + "iVBORw0KGgo" * 1000
    for mode in ("none", "patterns"):
        r = Redactor(RedactionConfig(mode=mode))  # type: ignore[arg-type]
        out = r.text(f"look at {img} please")
        assert out == "look at data:image/png;base64,[8250 bytes not traced] please"
    parts = [{"type": "image_url", "image_url": {"url": img}}, {"type": "text", "text": "hi"}]
    assert Redactor(RedactionConfig()).value(parts) == [
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,[8250 bytes not traced]"},
        },
        {"type": "text", "text": "hi"},
    ]
