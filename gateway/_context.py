"""What one request carries through the path, and the hook types that extend the path.

Hooks keep the proxy small: prompt/RAG resolution, admission (rate limits, load shedding) and
observers (tracing, usage reconciliation) plug in without the proxy knowing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers

from gateway._keys import Principal
from gateway._replicas import Replica


@dataclass(eq=False, slots=True)
class RequestContext:
    request_id: str
    route: str
    t0: float
    headers: Headers
    principal: Principal | None = None
    data: dict[str, Any] | None = None
    body: bytes = b""
    requested_model: str | None = None
    model: str = "-"
    stream: bool = False
    user: str | None = None
    replica: Replica | None = None
    attempts: int = 0
    status: int = 0
    ttft_s: float | None = None
    usage: dict[str, Any] | None = None
    relayed_tokens: int | None = None  # a stream without usage: generated tokens relayed
    error: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    # Set by resolvers: "prompt" (PromptVersion), "citations" (list of dicts), ...
    extensions: dict[str, Any] = field(default_factory=dict)
    # Observers that need the output set capture_output; then the proxy keeps it here.
    capture_output: bool = False
    output: bytes | None = None
    output_chunks: list[bytes] | None = None
    on_finish: list[Callable[[RequestContext], None]] = field(default_factory=list)


# Rewrites ``ctx.data`` (returns True when it changed); may raise GatewayError.
Resolver = Callable[[RequestContext], Awaitable[bool]]
# Runs once the model is known, before forwarding; raises GatewayError (429, 503) to refuse.
Admission = Callable[[RequestContext], Awaitable[None]]
# Called exactly once when the request is over (success, error or cancelled stream).
Observer = Callable[[RequestContext], None]
