"""Online quality scores from Langfuse, keyed by the gateway request they judge.

The monitor's quality job (``llmops monitor quality``) writes judge scores named
``online.<metric>`` on gateway traces. A gateway trace's id is
``Langfuse.create_trace_id(seed=request_id)``, so the A/B report joins those scores to the
gateway's own variant records by request id without reading a single trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from langfuse import Langfuse

PREFIX = "online."
_PAGE = 100  # the API's largest page


def fetch_online_scores(
    client: Any, since: datetime, *, prefix: str = PREFIX, max_pages: int = 200
) -> dict[str, dict[str, float]]:
    """trace id -> {metric: value} for the numeric scores named ``prefix*`` since ``since``.

    ``client`` is a ``langfuse.Langfuse``; only its API client is used. A metric scored twice
    on one trace keeps the later value (the list comes newest first)."""
    out: dict[str, dict[str, float]] = {}
    cursor: str | None = None
    for _ in range(max_pages):
        page = client.api.scores.get_many(
            from_timestamp=since, data_type="NUMERIC", fields="subject", limit=_PAGE,
            cursor=cursor,
        )  # fmt: skip
        for s in page.data:
            if not s.name.startswith(prefix):
                continue
            subject = s.subject
            tid = getattr(subject, "trace_id", None) or (
                subject.id if getattr(subject, "kind", None) == "trace" else None
            )
            if tid:
                out.setdefault(tid, {}).setdefault(s.name[len(prefix) :], float(s.value))
        cursor = page.meta.cursor
        if not cursor:
            break
    return out


def by_request(
    request_ids: Iterable[str], scores: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """The scores of these requests, keyed by request id."""
    out: dict[str, dict[str, float]] = {}
    for rid in request_ids:
        got = scores.get(Langfuse.create_trace_id(seed=rid))
        if got:
            out[rid] = got
    return out
