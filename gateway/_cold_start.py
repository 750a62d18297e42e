"""Cold starts: a model with no ready replica holds its requests, up to its
``cold_start_timeout_s``, while one comes up, instead of answering 503 at once.

Replicas come up on their own (a Deployment scaled from zero; the autoscaler sees
``llmops_cold_start_waiting``) or because the gateway starts them: a local engine with
``start: on_first_request`` is launched by the first request that needs it. While requests
wait, one probe per model checks the replicas' ``/health`` every half second; every waiter
wakes when one passes. The answer says how long it waited (``x-llmops-cold-start``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway._context import RequestContext
from gateway._errors import GatewayError
from gateway._health import check_replica
from gateway._state import GatewayState

log = logging.getLogger("llmops.gateway.cold_start")

PROBE_INTERVAL_S = 0.5
HEADER = "x-llmops-cold-start"


class ColdStarts:
    def __init__(
        self,
        state: GatewayState,
        start_engine: Callable[[str], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.state = state
        self.start_engine = start_engine
        self.on_demand: set[str] = set()  # models whose local engine has not been started yet
        self.waiting: dict[str, int] = {}
        self.started_total: dict[str, int] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._starts: dict[str, asyncio.Task[None]] = {}

    async def wait(self, ctx: RequestContext, model: str, timeout_s: float) -> None:
        """Return once ``model`` has an available replica; 503 ``cold_start_timeout`` after
        ``timeout_s``, or at once when its engine failed to start."""
        pool = self.state.pools[model]
        t0 = time.monotonic()
        self.waiting[model] = self.waiting.get(model, 0) + 1
        try:
            self._start(model)
            event = self._ready.get(model)
            if event is None or event.is_set():
                event = self._ready[model] = asyncio.Event()
            if model not in self._probes or self._probes[model].done():
                self._probes[model] = asyncio.create_task(self._probe(model, event))
            while not pool.any_available():
                start = self._starts.get(model)
                if start is not None and start.done() and start.exception() is not None:
                    del self._starts[model]
                    self.on_demand.add(model)  # the next request tries again
                    raise GatewayError(
                        503, f"The engine for model '{model}' failed to start: "
                        f"{start.exception()}", code="engine_start_failed",
                        headers={"retry-after": "30"},
                    )  # fmt: skip
                remaining = t0 + timeout_s - time.monotonic()
                if remaining <= 0:
                    raise GatewayError(
                        503, f"No replica of model '{model}' came up within {timeout_s:g} s.",
                        code="cold_start_timeout", headers={"retry-after": "10"},
                    )  # fmt: skip
                waits = [asyncio.ensure_future(event.wait())]
                if start is not None and not start.done():
                    waits.append(start)  # type: ignore[arg-type]
                await asyncio.wait(waits, timeout=min(remaining, 5.0),
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                waits[0].cancel()
        finally:
            self.waiting[model] -= 1
        waited = time.monotonic() - t0
        if waited > 0.001:
            ctx.response_headers[HEADER] = f"waited {waited:.1f}s"

    def _start(self, model: str) -> None:
        if model not in self.on_demand or self.start_engine is None:
            return
        self.on_demand.discard(model)
        self.started_total[model] = self.started_total.get(model, 0) + 1
        log.info("starting the engine for %s: a request is waiting for it", model)
        self._starts[model] = asyncio.create_task(self.start_engine(model))

    async def _probe(self, model: str, event: asyncio.Event) -> None:
        """Check the model's replicas until one is available (or nobody waits)."""
        try:
            while self.waiting.get(model, 0) > 0:
                pool = self.state.pools.get(model)
                if pool is None:
                    return
                now = time.monotonic()
                down = [r for r in pool.replicas if not r.available(now)]
                if down:
                    await asyncio.gather(*(check_replica(self.state, r) for r in down))
                if pool.any_available():
                    event.set()
                    return
                await asyncio.sleep(PROBE_INTERVAL_S)
        except Exception:  # a probe bug must not leave waiters hanging: they time out
            log.exception("cold start probe for %s failed", model)


class ColdStartCollector:
    """``llmops_cold_start_waiting{model}``: requests held for a replica to come up (an
    autoscaler's signal to scale a model up from zero); ``llmops_engine_starts_total{model}``:
    local engines started on demand."""

    def __init__(self, cold: ColdStarts) -> None:
        self.cold = cold

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "llmops_cold_start_waiting", "Requests waiting for a replica to come up",
            labels=["model"],
        )  # fmt: skip
        for model, n in self.cold.waiting.items():
            waiting.add_metric([model], n)
        yield waiting
        starts = CounterMetricFamily(
            "llmops_engine_starts", "Local engines started on demand", labels=["model"]
        )
        for model, n in self.cold.started_total.items():
            starts.add_metric([model], n)
        yield starts
