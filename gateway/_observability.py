"""Observability wired into the gateway: hooks, the feedback route, background workers and metrics.

Hooks on the request path, all cheap:
- a resolver placed *first* (before prompt/RAG resolution rewrites the body): derives the trace
  id, decides sampling, sets the trace header, asks the proxy to keep the output, and reads the
  user's query (for the trace input and the drift sample);
- an admission hook: stamps when the request was admitted (the generation's start);
- an observer: hands the finished request to the tracing and drift queues.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from gateway._context import RequestContext
from gateway._feedback import feedback_route
from observability import (
    DriftSampler,
    ObservabilityConfig,
    Redactor,
    TraceHandle,
    Tracer,
    TraceRecord,
    drift_families,
    is_sampled,
    query_text,
    read_results,
    trace_id_for,
)

log = logging.getLogger("llmops.gateway.observability")


class PromptLinks:
    """(prompt name, git version) -> the Langfuse version ``llmops prompts sync-langfuse`` gave
    it, so a generation links to its prompt in Langfuse. Read in a background thread at start
    and every ``prompt_links_refresh_s``; the request path and the shipper only look up a dict,
    and a Langfuse that is down leaves the last map in place."""

    def __init__(self, settings: Any, interval_s: float) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.versions: dict[tuple[str, str], int] = {}
        self.refreshed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, name: str | None, version: str | None) -> int | None:
        if name is None or version is None:
            return None
        return self.versions.get((name, version))

    def refresh(self) -> None:
        from prompts import langfuse_prompt_versions

        try:
            self.versions = langfuse_prompt_versions(self.settings)
            self.refreshed += 1
        except Exception as exc:  # the SDK raises many kinds; all mean "try again later"
            log.warning("reading Langfuse prompt versions failed (kept the last ones): %s", exc)

    def start(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self.refresh()
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=run, name="llmops-prompt-links", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _prompt_links(config: ObservabilityConfig) -> PromptLinks | None:
    tracing = config.tracing
    lf = tracing.langfuse
    if not (tracing.enabled and tracing.exporter == "langfuse" and lf.link_prompts):
        return None
    pk, sk, url = lf.resolved()
    if not (pk and sk):
        return None
    from prompts import LangfuseSettings

    settings = LangfuseSettings(public_key=pk, secret_key=sk, base_url=url, timeout_s=lf.timeout_s)
    return PromptLinks(settings, lf.prompt_links_refresh_s)


class Observability:
    """One app's tracing and drift sampling (what the plug-in installs; tests reach it)."""

    def __init__(
        self,
        config: ObservabilityConfig,
        *,
        span_exporter: Any = None,
        embedder: Any = None,
    ) -> None:
        self.config = config
        self.redactor = Redactor(config.redaction)
        self.prompt_links = _prompt_links(config)
        self.tracer: Tracer | None = (
            Tracer(
                config.tracing,
                config.redaction,
                to_record=functools.partial(record_of, links=self.prompt_links),
                span_exporter=span_exporter,
            )
            if config.tracing.enabled
            else None
        )
        self.drift: DriftSampler | None = (
            DriftSampler(config.drift, self.redactor, embedder=embedder)
            if config.drift.enabled
            else None
        )
        self._header = config.tracing.header
        self._capture_output = config.tracing.capture_output

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self.tracer is not None:
            self.tracer.start()
        if self.prompt_links is not None:
            self.prompt_links.start()
        if self.drift is not None:
            self.drift.store.prune(self.config.drift.retention_days)
            self.drift.start()

    def stop(self) -> None:
        if self.prompt_links is not None:
            self.prompt_links.stop()
        if self.drift is not None:
            self.drift.stop()
        if self.tracer is not None:
            self.tracer.stop()

    def flush(self) -> None:
        if self.drift is not None:
            self.drift.flush()
        if self.tracer is not None:
            self.tracer.flush()

    # --- hooks ------------------------------------------------------------------------------
    async def resolve(self, ctx: RequestContext) -> bool:
        tracer, drift = self.tracer, self.drift
        traced = False
        tid = trace_id_for(ctx.request_id)
        if tracer is not None and tracer.enabled and is_sampled(tid, tracer.bound):
            traced = True
            ctx.response_headers[self._header] = tid
            if self._capture_output:
                ctx.capture_output = True
        sample_drift = drift is not None and drift.wants(ctx.route)
        if traced or sample_drift:
            ctx.extensions["trace"] = TraceHandle(
                trace_id=tid,
                traced=traced,
                query=query_text(ctx.data, ctx.route),
                drift=sample_drift,
            )
        return False

    async def admit(self, ctx: RequestContext) -> None:
        h = ctx.extensions.get("trace")
        if h is not None:
            h.admitted = time.perf_counter()

    def observe(self, ctx: RequestContext) -> None:
        h: TraceHandle | None = ctx.extensions.get("trace")
        tracer = self.tracer
        if h is None:
            # Failed before resolution (auth, body): still one trace per (sampled) request.
            if tracer is None or not tracer.enabled:
                return
            tid = trace_id_for(ctx.request_id)
            if not is_sampled(tid, tracer.bound):
                return
            h = ctx.extensions["trace"] = TraceHandle(trace_id=tid, traced=True)
        if h.traced and tracer is not None:
            tracer.submit(ctx)
        if h.drift and h.query and self.drift is not None and 200 <= ctx.status < 400:
            prompt = ctx.extensions.get("prompt")
            self.drift.submit(
                h.query,
                {"model": ctx.model, "route": ctx.route, "prompt": getattr(prompt, "name", None)},
            )


class _Collector:
    """Scrape-time view of the workers' counters and of the last drift results on disk."""

    def __init__(self, obs: Observability) -> None:
        self.obs = obs

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        t = self.obs.tracer
        if t is not None:
            c = CounterMetricFamily(
                "llmops_traces", "Requests handed to tracing, by outcome", labels=["outcome"]
            )
            c.add_metric(["queued"], t.queued)
            c.add_metric(["dropped"], t.dropped)
            c.add_metric(["built"], t.built)
            c.add_metric(["failed"], t.failed)
            yield c
            yield GaugeMetricFamily(
                "llmops_tracing_enabled", "1 when traces are exported", value=int(t.enabled)
            )
        d = self.obs.drift
        if d is not None:
            c = CounterMetricFamily(
                "llmops_drift_samples",
                "Live queries sampled for drift, by outcome",
                labels=["outcome"],
            )
            c.add_metric(["queued"], d.queued)
            c.add_metric(["dropped"], d.dropped)
            c.add_metric(["written"], d.written)
            c.add_metric(["failed"], d.failed)
            yield c
            yield from drift_families(read_results(d.store.results_dir))


def observability_plugin(
    gw: Any, *, span_exporter: Any = None, embedder: Any = None
) -> Observability | None:
    """Install observability on a GatewayApp from ``gw.config.observability``.

    Returns the :class:`Observability` (also at ``gw.observability``), or None when the config
    switches everything off. ``span_exporter``/``embedder`` are for tests (in-memory exporter,
    a stub embedding).
    """
    cfg: ObservabilityConfig = gw.config.observability
    if not cfg.active:
        return None
    obs = Observability(cfg, span_exporter=span_exporter, embedder=embedder)
    gw.observability = obs
    proxy = gw.proxy
    proxy.resolvers.insert(0, obs.resolve)
    proxy.admissions.append(obs.admit)
    proxy.observers.append(obs.observe)
    gw.startup.append(obs.start)
    gw.shutdown.append(obs.stop)
    gw.state.metrics.registry.register(_Collector(obs))
    if cfg.feedback.enabled:
        from starlette.responses import Response

        gw.app.add_api_route(
            "/v1/feedback",
            feedback_route(gw, obs.tracer, cfg.feedback),
            methods=["POST"],
            response_class=Response,
        )
    return obs


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


def record_of(
    ctx: RequestContext, offset_ns: int, end_pc: float, links: PromptLinks | None = None
) -> TraceRecord | None:
    """The record of a finished, sampled request (None when it is not traced).

    ``offset_ns`` turns ``perf_counter`` seconds into wall-clock nanoseconds; ``links`` gives
    the prompt's Langfuse version number, when it was synced.
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
                "langfuse_version": (
                    links.get(getattr(prompt, "name", None), getattr(prompt, "version", None))
                    if links is not None
                    else None
                ),
            }
            if prompt is not None
            else None
        ),
        citations=list(citations) if isinstance(citations, list) else None,
        retrieval=dict(retrieval) if isinstance(retrieval, dict) else None,
        query=h.query,
        variant=variant[1] if (variant := ctx.extensions.get("variant")) else None,
        cost=(
            {"input": charge.input_usd, "output": charge.output_usd, "total": charge.usd}
            if (charge := ctx.extensions.get("spend")) is not None
            else None
        ),
    )
