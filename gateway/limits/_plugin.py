"""Wires the rate limiter and the shedder into the gateway as admission hooks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway._config import GatewayConfig
from gateway.limits._admission import RateLimiter
from gateway.limits._shedding import Shedder

if TYPE_CHECKING:
    from gateway._app import GatewayApp


class _Stats(Collector):
    """Counters read at scrape time, so the hot path only bumps plain integers."""

    def __init__(self, limiter: RateLimiter, shedder: Shedder | None) -> None:
        self.limiter, self.shedder = limiter, shedder

    def collect(self) -> Any:
        c = CounterMetricFamily("llmops_ratelimit_store_errors", "Failed rate-limit store calls")
        c.add_metric([], self.limiter.redis_errors)
        yield c
        c = CounterMetricFamily("llmops_ratelimited", "Requests refused by rate limits")
        c.add_metric([], self.limiter.refused)
        yield c
        g = GaugeMetricFamily(
            "llmops_budget_used_ratio",
            "Share of a token or spend budget used in its current period, as read at the "
            "last admission",
            labels=["scope", "name", "period", "unit"],
        )
        for labels, used in self.limiter.budget_used.items():
            g.add_metric(list(labels), used)
        yield g
        if self.shedder is not None:
            c = CounterMetricFamily("llmops_shed", "Requests refused by load shedding")
            c.add_metric([], self.shedder.shed_total)
            yield c


def install(gw: GatewayApp) -> dict[str, Any]:
    cfg = gw.config.limits
    if not cfg.enabled:
        return {}
    state = gw.state
    limiter = RateLimiter(gw.config)
    gw.proxy.admissions.append(limiter.admit)
    shedder: Shedder | None = None
    if cfg.shedding.enabled:
        shedder = Shedder(state, cfg.shedding)
        gw.proxy.admissions.append(shedder.admit)
        depth = Gauge("llmops_admission_queue_depth", "Requests waiting for a slot", ["model"],
                      registry=state.metrics.registry)  # fmt: skip
        sh = shedder

        def depth_of(name: str) -> Any:
            return lambda: len(sh.gates[name].waiters) if name in sh.gates else 0

        for name in sh.gates:
            depth.labels(name).set_function(depth_of(name))
    state.metrics.registry.register(_Stats(limiter, shedder))
    tasks: list[asyncio.Task[None]] = []

    def start() -> None:
        if shedder is not None:
            tasks.append(asyncio.get_running_loop().create_task(shedder.run(), name="shedding"))

    async def stop() -> None:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        await limiter.close()

    def reload(new: GatewayConfig) -> None:
        limiter.reconfigure(new)
        if shedder is not None:
            shedder.reconfigure(new.limits.shedding)

    def readiness() -> tuple[bool, dict[str, Any]]:
        info: dict[str, Any] = {"backend": limiter.cfg.backend}
        ok = True
        if limiter.redis is not None:
            reachable = time.monotonic() >= limiter.redis_down_until
            info["store_reachable"] = reachable
            info["failure_policy"] = limiter.cfg.failure_policy
            ok = reachable or limiter.cfg.failure_policy != "closed"
        if shedder is not None:
            info["queued"] = shedder.queue_depth()
        return ok, {"limits": info}

    gw.startup.append(start)
    gw.shutdown.append(stop)
    state.reload_hooks.append(reload)
    gw.readiness_checks.append(readiness)
    return {"limiter": limiter, "shedder": shedder}
