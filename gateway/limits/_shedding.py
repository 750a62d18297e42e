"""Load shedding: a bounded admission queue per model in front of the replicas.

A model takes ``replica_capacity`` requests in flight per available replica (a replica whose
vLLM queue, ``vllm:num_requests_waiting``, is above ``max_waiting`` counts as full). Beyond
that, up to ``queue_size`` requests wait in FIFO order for a slot, at most
``queue_timeout_s``; everything else gets 503 with Retry-After at once. So memory and
waiting time stay bounded whatever the offered load. vLLM's queue lengths are read by the
gateway's one ``/metrics`` poller (``gateway._engine_stats``), which routing shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from gateway import _engine_stats as engine_stats
from gateway._context import RequestContext
from gateway._errors import GatewayError
from gateway._limits_config import SheddingConfig
from gateway._replicas import ModelPool
from gateway._state import GatewayState

log = logging.getLogger("llmops.gateway.shedding")


@dataclass(eq=False, slots=True)
class _Gate:
    pool: ModelPool
    capacity_per_replica: int
    queue_size: int
    admitted: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class Shedder:
    def __init__(self, state: GatewayState, cfg: SheddingConfig) -> None:
        self.state = state
        self.cfg = cfg
        self.gates: dict[str, _Gate] = {}
        self.shed_total = 0
        self.reconfigure(cfg)
        # vLLM's queue lengths come from the gateway's one /metrics poller, shared with routing.
        engine_stats.poller_for(state).want("shedding", self._wants)

    def _wants(self) -> engine_stats.Want | None:
        if not self.cfg.max_waiting:
            return None
        replicas = [r for g in self.gates.values() for r in g.pool.replicas]
        return engine_stats.Want(replicas, self.cfg.scrape_interval_s, self.cfg.scrape_timeout_s)

    def reconfigure(self, cfg: SheddingConfig) -> None:
        self.cfg = cfg
        for name, pool in self.state.pools.items():
            over = cfg.models.get(name)
            cap = over.replica_capacity if over and over.replica_capacity else cfg.replica_capacity
            qs = over.queue_size if over and over.queue_size is not None else cfg.queue_size
            gate = self.gates.get(name)
            if gate is None:
                self.gates[name] = _Gate(pool, cap, qs)
            else:
                gate.pool, gate.capacity_per_replica, gate.queue_size = pool, cap, qs
        for name in [n for n in self.gates if n not in self.state.pools]:
            del self.gates[name]
        self.wake_all()

    def capacity(self, gate: _Gate) -> int:
        now = time.monotonic()
        limit = self.cfg.max_waiting
        n = 0
        for r in gate.pool.replicas:
            if r.available(now) and not (limit and r.waiting > limit):
                n += 1
        return n * gate.capacity_per_replica

    async def admit(self, ctx: RequestContext) -> None:
        gate = self.gates.get(ctx.model)
        if gate is None:
            return
        cap = self.capacity(gate)
        if cap == 0 and not gate.pool.any_available():
            return  # nothing is up: the proxy answers 503 no_healthy_replica itself
        if gate.admitted < cap and not gate.waiters:
            gate.admitted += 1
            ctx.on_finish.append(lambda _c: self._release(gate))
            return
        if len(gate.waiters) >= gate.queue_size:
            raise self._shed(ctx.model, "saturated")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gate.waiters.append(fut)
        try:
            async with asyncio.timeout(self.cfg.queue_timeout_s):
                await fut
        except BaseException as e:
            if fut.done() and not fut.cancelled():
                self._release(gate)  # a slot was handed over just as we gave up
            else:
                with contextlib.suppress(ValueError):
                    gate.waiters.remove(fut)
            if isinstance(e, TimeoutError):
                raise self._shed(ctx.model, "queue_timeout") from None
            raise
        ctx.on_finish.append(lambda _c: self._release(gate))

    def _shed(self, model: str, reason: str) -> GatewayError:
        self.shed_total += 1
        msg = (
            f"Model '{model}' is at capacity; the request was not queued. Retry shortly."
            if reason == "saturated"
            else f"Model '{model}' stayed at capacity while the request waited. Retry shortly."
        )
        return GatewayError(
            503, msg, code="model_overloaded", headers={"retry-after": str(self.cfg.retry_after_s)}
        )

    def _release(self, gate: _Gate) -> None:
        gate.admitted -= 1
        self._wake(gate)

    def _wake(self, gate: _Gate) -> None:
        if not gate.waiters:
            return
        cap = self.capacity(gate)
        while gate.waiters and gate.admitted < cap:
            fut = gate.waiters.popleft()
            if not fut.done():
                gate.admitted += 1
                fut.set_result(None)

    def wake_all(self) -> None:
        for gate in self.gates.values():
            self._wake(gate)

    def queue_depth(self) -> dict[str, int]:
        return {n: len(g.waiters) for n, g in self.gates.items()}

    # --- background: waking waiters when capacity returns (a replica back up, a queue drained)
    async def run(self) -> None:
        interval = min(self.cfg.scrape_interval_s, 1.0)
        while True:
            try:
                self.wake_all()
            except Exception:  # never let the loop die
                log.exception("shedding loop failed")
            await asyncio.sleep(interval)
