"""What a trace needs of a finished request, as plain JSON-able data.

Made from the request context off the request path (by the tracer's shipper thread), so spans
can be built in another thread or in the trace worker process alike, from the same record.
Times are wall-clock nanoseconds; the response is kept as text (UTF-8 of the relayed bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import RequestContext


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


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


def record_of(ctx: RequestContext, offset_ns: int, end_pc: float) -> TraceRecord | None:
    """The record of a finished, sampled request (None when it is not traced).

    ``offset_ns`` turns ``perf_counter`` seconds into wall-clock nanoseconds.
    """
    h = ctx.extensions.get("trace")
    if h is None or not h.traced:
        return None

    def ns(pc: float) -> int:
        return int(pc * 1e9) + offset_ns

    prompt = ctx.extensions.get("prompt")
    if ctx.output_chunks is not None:
        output, streamed = _text(b"".join(ctx.output_chunks)), True
    else:
        output, streamed = _text(ctx.output), False
    citations = ctx.extensions.get("citations")
    retrieval = ctx.extensions.get("retrieval")
    return TraceRecord(
        trace_id=h.trace_id,
        request_id=ctx.request_id,
        route=ctx.route,
        model=ctx.model,
        status=ctx.status,
        start_ns=ns(ctx.t0),
        end_ns=ns(end_pc),
        gen_start_ns=ns(h.admitted) if h.admitted is not None else None,
        requested_model=ctx.requested_model,
        error=ctx.error,
        attempts=ctx.attempts,
        replica=ctx.replica.url if ctx.replica is not None else None,
        principal=ctx.principal.name if ctx.principal is not None else None,
        user=ctx.user,
        session=ctx.headers.get("x-session-id"),
        ttft_s=ctx.ttft_s,
        usage=ctx.usage,
        data=ctx.data,
        output=output,
        streamed=streamed,
        prompt=(
            {
                "name": getattr(prompt, "name", None),
                "version": getattr(prompt, "version", None),
                "commit": getattr(prompt, "commit", None),
            }
            if prompt is not None
            else None
        ),
        citations=list(citations) if isinstance(citations, list) else None,
        retrieval=dict(retrieval) if isinstance(retrieval, dict) else None,
        query=h.query,
    )
