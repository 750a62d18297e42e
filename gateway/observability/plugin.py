"""The gateway plug-in: hooks, the feedback route, background workers and metrics.

Hooks on the request path, all cheap:
- a resolver placed *first* (before prompt/RAG resolution rewrites the body): derives the trace
  id, decides sampling, sets the trace header, asks the proxy to keep the output, and reads the
  user's query (for the trace input and the drift sample);
- an admission hook: stamps when the request was admitted (the generation's start);
- an observer: hands the finished request to the tracing and drift queues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from gateway.context import RequestContext
from gateway.observability.config import ObservabilityConfig
from gateway.observability.drift_sampler import DriftSampler
from gateway.observability.extract import query_text
from gateway.observability.feedback import feedback_route
from gateway.observability.redact import Redactor
from gateway.observability.tracing import TraceHandle, Tracer, is_sampled, trace_id_for

log = logging.getLogger("llmops.gateway.observability")


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
        self.tracer: Tracer | None = (
            Tracer(config.tracing, config.redaction, span_exporter=span_exporter)
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
        if self.drift is not None:
            self.drift.store.prune(self.config.drift.retention_days)
            self.drift.start()

    def stop(self) -> None:
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
            from gateway.observability.drift_metrics import drift_families, read_results

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
