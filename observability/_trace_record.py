"""What a trace needs of a finished request, as plain JSON-able data.

Made by the caller's ``to_record`` off the request path (in the tracer's shipper thread), so
spans can be built in another thread or in the trace worker process alike, from the same record.
Times are wall-clock nanoseconds; the response is kept as text (UTF-8 of the relayed bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(slots=True)
class TraceRecord:
    trace_id: str
    request_id: str
    route: str
    model: str
    status: int
    start_ns: int
    end_ns: int
    gen_start_ns: int | None = None  # admission passed: the generation's start
    requested_model: str | None = None
    error: str | None = None
    attempts: int = 0
    replica: str | None = None  # the replica's URL
    principal: str | None = None  # the API key's name
    user: str | None = None
    session: str | None = None
    ttft_s: float | None = None
    usage: dict[str, Any] | None = None
    data: dict[str, Any] | None = None  # the body as sent upstream
    output: str | None = None  # the response body, or the relayed SSE text when streamed
    streamed: bool = False
    prompt: dict[str, Any] | None = None  # {name, version, commit}
    citations: list[dict[str, Any]] | None = None
    retrieval: dict[str, Any] | None = None
    query: str | None = None  # the user's query, read before prompt resolution
    variant: str | None = None  # the model variant that served an alias with variants
    cost: dict[str, float] | None = None  # USD {input, output, total}: Langfuse's cost details

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TraceRecord:
        return cls(**d)

    @property
    def generated(self) -> bool:
        """The request reached (or was admitted for) a model: it has a generation."""
        return self.replica is not None or self.status < 400 or self.gen_start_ns is not None


_FIELDS = tuple(f.name for f in fields(TraceRecord))
