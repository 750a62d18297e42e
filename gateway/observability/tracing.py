"""Langfuse traces for gateway requests, built off the request path.

The request path does two cheap things: it derives the trace id from the request id (so a trace
id can be answered in a header before forwarding, and ``/v1/feedback`` can find a trace from a
request id alone) and, when the request is over, hands the finished context to a bounded queue.
One worker thread turns it into OpenTelemetry spans with the Langfuse attribute schema and
explicit start/end times; the Langfuse SDK's span processor batches and exports them from its
own thread. A full queue drops the trace (counted), a dead Langfuse costs the exporter retries,
never the request.

Why spans are made on a tracer of our own TracerProvider rather than with
``Langfuse.start_observation``: the SDK's observation wrappers cost ~0.35 ms CPU per request
(media scanning, per-attribute limit checks); setting the same attributes directly costs a
third of that. The SDK still owns the client, the span processor, the exporter and scores.
The provider is never registered globally, so two gateways (or tests) in one process stay apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.context import RequestContext
from gateway.observability.config import TracingConfig
from gateway.observability.extract import (
    body_output,
    generation_input,
    model_parameters,
    stream_output,
)
from gateway.observability.redact import Redactor

log = logging.getLogger("llmops.gateway.tracing")

_TRACE_ID_MASK = (1 << 64) - 1
_LANGFUSE_TRACER_NAME = "langfuse-sdk"  # the scope the Langfuse span processor exports

# Langfuse attribute names (langfuse.LangfuseOtelSpanAttributes), spelled out so that the
# request path never imports the SDK.
TRACE_NAME = "langfuse.trace.name"
TRACE_USER_ID = "user.id"
TRACE_SESSION_ID = "session.id"
TRACE_TAGS = "langfuse.trace.tags"
TRACE_METADATA = "langfuse.trace.metadata"
OBS_TYPE = "langfuse.observation.type"
OBS_INPUT = "langfuse.observation.input"
OBS_OUTPUT = "langfuse.observation.output"
OBS_LEVEL = "langfuse.observation.level"
OBS_STATUS_MESSAGE = "langfuse.observation.status_message"
OBS_METADATA = "langfuse.observation.metadata"
OBS_MODEL = "langfuse.observation.model.name"
OBS_MODEL_PARAMETERS = "langfuse.observation.model.parameters"
OBS_USAGE = "langfuse.observation.usage_details"
OBS_COMPLETION_START = "langfuse.observation.completion_start_time"
OBS_PROMPT_NAME = "langfuse.observation.prompt.name"
OBS_PROMPT_VERSION = "langfuse.observation.prompt.version"
VERSION = "langfuse.version"
ENVIRONMENT = "langfuse.environment"
RELEASE = "langfuse.release"


def trace_id_for(request_id: str) -> str:
    """The Langfuse trace id of a request: ``Langfuse.create_trace_id(seed=request_id)``."""
    return hashlib.sha256(request_id.encode("utf-8")).digest()[:16].hex()


def sampling_bound(rate: float) -> int:
    """OpenTelemetry's TraceIdRatioBased bound: a trace is kept when its low 64 bits are below."""
    return round(rate * (1 << 64))


def is_sampled(trace_id: str, bound: int) -> bool:
    return (int(trace_id, 16) & _TRACE_ID_MASK) < bound


@dataclass(slots=True)
class TraceHandle:
    """What the request path knows about a request's observability (``ctx.extensions["trace"]``)."""

    trace_id: str
    traced: bool
    query: str | None = None
    drift: bool = False
    admitted: float | None = None  # perf_counter when admission passed (generation start)


def _j(v: Any) -> str:
    return orjson.dumps(v, default=str).decode()


def _meta(prefix: str, items: dict[str, Any]) -> dict[str, str]:
    # Langfuse v5 SDKs JSON-encode every metadata value (strings too): the server decodes them.
    return {f"{prefix}.{k}": _j(v) for k, v in items.items() if v is not None}


def _usage(usage: dict[str, Any] | None) -> dict[str, int] | None:
    if not usage:
        return None
    out: dict[str, int] = {}
    for src, dst in (
        ("prompt_tokens", "input"),
        ("completion_tokens", "output"),
        ("total_tokens", "total"),
    ):
        v = usage.get(src)
        if isinstance(v, int):
            out[dst] = v
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out["input_cached_tokens"] = details["cached_tokens"]
    return out or None


def _seeded_ids() -> Any:
    """Id generator whose next trace id can be set: roots get the request's derived trace id."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class SeededIds(RandomIdGenerator):
        next_trace_id: int | None = None

        def generate_trace_id(self) -> int:
            tid, self.next_trace_id = self.next_trace_id, None
            return tid if tid is not None else super().generate_trace_id()

        def is_trace_id_random(self) -> bool:
            return False  # derived from the request id (a hash), not drawn

    return SeededIds()


class Tracer:
    """Owns one Langfuse client, one TracerProvider and the span-building worker of one app."""

    def __init__(
        self,
        config: TracingConfig,
        redactor: Redactor,
        *,
        span_exporter: Any = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.redactor = redactor
        self.bound = sampling_bound(config.sample_rate)
        self._span_exporter = span_exporter
        self._queue: queue.Queue[tuple[RequestContext, int, float] | None] = queue.Queue(
            config.max_queue
        )
        self._thread: threading.Thread | None = None
        self.langfuse: Any = None
        self._provider: Any = None
        self._tracer: Any = None
        self._ids: Any = None
        self._public_key: str | None = None
        self.enabled = False
        # Counters read by the metrics collector (single writer each; no lock needed).
        self.queued = 0
        self.dropped = 0
        self.built = 0
        self.failed = 0

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        pk, sk, url = self.config.langfuse.resolved()
        if not (pk and sk):
            log.warning(
                "tracing is enabled but LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY are not set: "
                "no traces will be sent"
            )
            return
        from langfuse import Langfuse
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        lf_cfg = self.config.langfuse
        res = {"service.name": "llmops-gateway"}
        if lf_cfg.environment:
            res[ENVIRONMENT] = lf_cfg.environment
        if lf_cfg.release:
            res[RELEASE] = lf_cfg.release
        self._ids = _seeded_ids()
        rate = self.config.sample_rate
        # Same ratio rule as our own decision, so the SDK also drops scores of unsampled traces.
        self._provider = TracerProvider(
            resource=Resource.create(res),
            sampler=TraceIdRatioBased(rate) if rate < 1 else None,
            id_generator=self._ids,
        )
        self.langfuse = Langfuse(
            public_key=pk,
            secret_key=sk,
            base_url=url,
            timeout=lf_cfg.timeout_s,
            flush_at=lf_cfg.flush_at,
            flush_interval=lf_cfg.flush_interval_s,
            environment=lf_cfg.environment,
            release=lf_cfg.release,
            tracer_provider=self._provider,
            span_exporter=self._span_exporter,
        )
        resources = getattr(self.langfuse, "_resources", None)
        if resources is not None and getattr(resources, "tracer_provider", None) is not (
            self._provider
        ):
            # The SDK keeps one resource manager per public key and process; another client
            # with this key already owns the exporter. Spans go through its provider instead.
            log.warning("a Langfuse client with this public key exists; sharing its exporter")
            self._provider = resources.tracer_provider
        self._public_key = pk
        from langfuse import __version__ as lf_version

        self._tracer = self._provider.get_tracer(
            _LANGFUSE_TRACER_NAME, lf_version, attributes={"public_key": pk}
        )
        self._thread = threading.Thread(target=self._run, name="llmops-tracing", daemon=True)
        self._thread.start()
        self.enabled = True
        log.info("Langfuse tracing to %s at sample rate %s", url, rate)

    def stop(self, timeout: float = 5.0) -> None:
        """Drain the queue and hand the SDK its shutdown, bounded by ``timeout`` seconds."""
        if not self.enabled:
            return
        self.enabled = False
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        lf = self.langfuse
        # The SDK's shutdown flushes; against a dead endpoint that waits for export retries.
        t = threading.Thread(target=lf.shutdown, name="langfuse-shutdown", daemon=True)
        t.start()
        t.join(timeout)
        self._forget_singleton()

    def _forget_singleton(self) -> None:
        # langfuse keeps a per-public-key singleton for the process; drop ours so a new app with
        # the same key (tests, reloads) gets a fresh exporter instead of a shut-down one.
        with contextlib.suppress(Exception):
            from langfuse._client.resource_manager import LangfuseResourceManager

            with LangfuseResourceManager._lock:
                inst = LangfuseResourceManager._instances.get(self._public_key or "")
                if inst is not None and getattr(inst, "_shutdown", False):
                    del LangfuseResourceManager._instances[self._public_key or ""]

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until queued requests are spans and the SDK exported them (tests, shutdown)."""
        if not self.enabled:
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        self.langfuse.flush()

    # --- request path -----------------------------------------------------------------------
    def submit(self, ctx: RequestContext) -> None:
        """Queue a finished request (called by the observer; never blocks)."""
        if not self.enabled:
            return
        now_ns, now_pc = time.time_ns(), time.perf_counter()
        try:
            self._queue.put_nowait((ctx, now_ns - int(now_pc * 1e9), now_pc))
            self.queued += 1
        except queue.Full:
            self.dropped += 1

    def score(
        self,
        *,
        trace_id: str,
        name: str,
        value: float | str,
        comment: str | None = None,
        data_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record a Langfuse score (queued; the SDK's score thread sends it). Returns its id."""
        score_id = hashlib.sha256(f"{trace_id}\x00{name}\x00{time.time_ns()}".encode()).hexdigest()
        self.langfuse.create_score(
            name=name,
            value=value,
            trace_id=trace_id,
            score_id=score_id[:32],
            data_type=data_type,
            comment=comment,
            metadata=metadata,
        )
        return score_id[:32]

    # --- worker -----------------------------------------------------------------------------
    def _run(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            try:
                if item is None:
                    return
                self._build(*item)
                self.built += 1
            except Exception:
                self.failed += 1
                log.exception("building a trace failed")
            finally:
                q.task_done()

    def _build(self, ctx: RequestContext, offset_ns: int, end_pc: float) -> None:
        from opentelemetry import trace as otel
        from opentelemetry.context import Context

        h: TraceHandle | None = ctx.extensions.get("trace")
        if h is None or not h.traced:
            return
        assert self._ids is not None
        red = self.redactor
        cfg = self.config

        def ns(pc: float) -> int:
            return int(pc * 1e9) + offset_ns

        start_ns, end_ns = ns(ctx.t0), ns(end_pc)
        gen_start_ns = ns(h.admitted) if h.admitted is not None else start_ns
        data = ctx.data
        prompt = ctx.extensions.get("prompt")
        pname = getattr(prompt, "name", None)
        pversion = getattr(prompt, "version", None)
        replica = ctx.replica.url if ctx.replica is not None else None
        principal = ctx.principal.name if ctx.principal is not None else None
        session = ctx.headers.get("x-session-id")
        query = red.text(h.query) if (h.query and cfg.capture_input) else None

        # output
        output: Any = None
        finish: str | None = None
        if cfg.capture_output:
            if ctx.output_chunks is not None:
                output, finish = stream_output(ctx.output_chunks, ctx.route)
            elif ctx.output is not None:
                output, finish = body_output(ctx.output, ctx.route)
            output = red.value(output) if output is not None else None
        out_attr = (
            (output if isinstance(output, str) else _j(output)) if output is not None else None
        )

        level = "DEFAULT"
        if ctx.status >= 500 or (400 <= ctx.status < 499):
            level = "ERROR"
        elif ctx.status == 499:
            level = "WARNING"

        tags = [f"model:{ctx.model}", f"route:{ctx.route}"]
        if pname:
            tags.append(f"prompt:{pname}")
        root_attrs: dict[str, Any] = {
            TRACE_NAME: pname or ctx.route,
            TRACE_TAGS: tags,
            OBS_TYPE: "span",
            OBS_LEVEL: level,
            **_meta(
                TRACE_METADATA,
                {"request_id": ctx.request_id, "model": ctx.model, "route": ctx.route},
            ),
            **_meta(OBS_METADATA, {"request_id": ctx.request_id, "status": ctx.status}),
        }
        user = ctx.user or principal
        if user:
            root_attrs[TRACE_USER_ID] = user
        if session:
            root_attrs[TRACE_SESSION_ID] = session
        if query is not None:
            root_attrs[OBS_INPUT] = query
        if out_attr is not None:
            root_attrs[OBS_OUTPUT] = out_attr
        if ctx.error:
            root_attrs[OBS_STATUS_MESSAGE] = ctx.error
        if pversion:
            root_attrs[VERSION] = str(pversion)

        ids = self._ids
        ids.next_trace_id = int(h.trace_id, 16)
        tracer = self._tracer
        root = tracer.start_span(
            f"llmops.{ctx.route}", context=Context(), start_time=start_ns, attributes=root_attrs
        )
        ids.next_trace_id = None
        parent = otel.set_span_in_context(root)

        citations = ctx.extensions.get("citations")
        if citations is not None:
            self._retrieval_span(ctx, h, parent, start_ns, gen_start_ns, citations)

        if ctx.replica is not None or ctx.status < 400 or h.admitted is not None:
            gen_attrs: dict[str, Any] = {
                OBS_TYPE: "embedding" if ctx.route == "embeddings" else "generation",
                OBS_MODEL: ctx.model,
                OBS_LEVEL: level,
                **_meta(
                    OBS_METADATA,
                    {
                        "request_id": ctx.request_id,
                        "route": ctx.route,
                        "replica": replica,
                        "served_model": data.get("model") if data else None,
                        "requested_model": ctx.requested_model,
                        "status": ctx.status,
                        "attempts": ctx.attempts,
                        "stream": ctx.stream,
                        "latency_s": round(end_pc - ctx.t0, 6),
                        "ttft_s": round(ctx.ttft_s, 6) if ctx.ttft_s is not None else None,
                        "finish_reason": finish,
                        "api_key": principal,
                        "prompt_name": pname,
                        "prompt_version": pversion,
                        "prompt_commit": getattr(prompt, "commit", None),
                    },
                ),
            }
            params = model_parameters(data)
            if params:
                gen_attrs[OBS_MODEL_PARAMETERS] = _j(params)
            if cfg.capture_input:
                inp = generation_input(data, ctx.route)
                if inp is not None:
                    inp = red.value(inp)
                    gen_attrs[OBS_INPUT] = inp if isinstance(inp, str) else _j(inp)
            if out_attr is not None:
                gen_attrs[OBS_OUTPUT] = out_attr
            usage = _usage(ctx.usage)
            if usage:
                gen_attrs[OBS_USAGE] = _j(usage)
            if ctx.ttft_s is not None:
                first = datetime.fromtimestamp((start_ns + int(ctx.ttft_s * 1e9)) / 1e9, UTC)
                gen_attrs[OBS_COMPLETION_START] = _j(first.isoformat())
            if ctx.error:
                gen_attrs[OBS_STATUS_MESSAGE] = ctx.error
            if pname:
                gen_attrs[VERSION] = str(pversion)
                if isinstance(pversion, int) or (isinstance(pversion, str) and pversion.isdigit()):
                    # Links to a Langfuse-managed prompt of that name (integer versions only).
                    gen_attrs[OBS_PROMPT_NAME] = pname
                    gen_attrs[OBS_PROMPT_VERSION] = int(pversion)
            gen = tracer.start_span(
                f"{ctx.route}:{ctx.model}",
                context=parent,
                start_time=gen_start_ns,
                attributes=gen_attrs,
            )
            gen.end(end_time=end_ns)
        root.end(end_time=end_ns)

    def _retrieval_span(
        self,
        ctx: RequestContext,
        h: TraceHandle,
        parent: Any,
        start_ns: int,
        end_ns: int,
        citations: list[dict[str, Any]],
    ) -> None:
        info = ctx.extensions.get("retrieval")
        info = info if isinstance(info, dict) else {}
        query = info.get("query") or h.query
        red = self.redactor
        hits = [
            {"id": c.get("id"), "source": c.get("source"), "score": c.get("score")}
            for c in citations
            if isinstance(c, dict)
        ]
        attrs: dict[str, Any] = {
            OBS_TYPE: "retriever",
            **_meta(
                OBS_METADATA,
                {
                    "collection": info.get("collection"),
                    "top_k": info.get("top_k"),
                    "hits": len(hits),
                    "hit_ids": [x["id"] for x in hits],
                    "scores": [x["score"] for x in hits],
                },
            ),
            OBS_OUTPUT: _j(hits),
        }
        if self.config.capture_input and isinstance(query, str):
            attrs[OBS_INPUT] = _j({"query": red.text(query), "collection": info.get("collection")})
        self._tracer.start_span(
            "retrieval", context=parent, start_time=start_ns, attributes=attrs
        ).end(end_time=end_ns)
