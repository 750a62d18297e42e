"""Spend accounting on the request path: price the estimate at admission, charge the request
when it ends, and record the charge in metrics, the trace and the ledger.

Installed as an admission hook ahead of the rate limiter, so money budgets find the estimate
(``extensions["spend_estimate"]``) and the charge (``extensions["spend"]``) that their own
reservation and reconciliation need; observers (tracing, the variants' event log) read the
charge too. Only priced models are accounted: a request of an unpriced one costs nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from gateway._config import GatewayConfig
from gateway._context import RequestContext
from gateway._replicas import Replica
from gateway._usage import estimate_tokens
from gateway.spend._charge import Charge, Pricer
from gateway.spend._ledger import IDLE, MemoryLedger, RedisLedger, Row, Table, add, hour_of

log = logging.getLogger("llmops.gateway.spend")


class SpendAccounting:
    def __init__(
        self, config: GatewayConfig, registry: CollectorRegistry,
        replicas: Callable[[], Iterable[Replica]] = tuple,
    ) -> None:  # fmt: skip
        self.config = config
        self.replicas = replicas  # the state's replicas now (engines add theirs at start-up)
        self.pricer = Pricer(config.pricing(), config.spend.window_s)
        days = config.spend.retention_days
        self.ledger: MemoryLedger | RedisLedger = (
            RedisLedger(config.limits.redis, days) if config.limits.backend == "redis"
            else MemoryLedger(days)
        )  # fmt: skip
        self.pending: Table = {}
        self.flush_errors = 0
        self.estimated = 0
        self._idle_seen: dict[Replica, float] = {}  # idle USD already in the ledger
        self._task: asyncio.Task[None] | None = None
        self.usd = Counter(
            "llmops_spend_usd", "Cost of requests (token price, or the replica cost allocated)",
            ["key", "team", "model", "variant", "prompt"], registry=registry,
        )  # fmt: skip
        self.estimated_total = Counter(
            "llmops_spend_estimated", "Requests charged without usage (relayed or estimate)",
            ["model", "basis"], registry=registry,
        )  # fmt: skip
        self._children: dict[tuple[str, ...], Any] = {}
        registry.register(_IdleCollector(self))

    def reconfigure(self, config: GatewayConfig) -> None:
        self.config = config
        self.pricer.pricing = config.pricing()

    # --- the request path -------------------------------------------------------------------
    async def admit(self, ctx: RequestContext) -> None:
        if ctx.model not in self.pricer.pricing:
            return
        lim = self.config.limits
        est = estimate_tokens(ctx, lim.chars_per_token, lim.default_completion_tokens)
        ctx.extensions["spend_estimate"] = (est, self.pricer.estimate_usd(ctx.model, *est))
        ctx.on_finish.append(self.finish)

    def finish(self, ctx: RequestContext) -> None:
        est = ctx.extensions["spend_estimate"][0]
        charge = self.pricer.charge(ctx, est)
        if charge is None:
            return
        ctx.extensions["spend"] = charge
        p = ctx.principal
        key, team = (p.name, p.team or "-") if p is not None else ("anonymous", "-")
        v = ctx.extensions.get("variant")
        variant = f"{v[0]}/{v[1]}" if v is not None else "-"
        prompt = ctx.extensions.get("prompt")
        pname = getattr(prompt, "name", None) or "-"
        labels = (key, team, ctx.model, variant, pname)
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.usd.labels(*labels)
        child.inc(charge.usd)
        if charge.estimated:
            self.estimated_total.labels(ctx.model, charge.basis).inc()
        pversion = f"{pname}@{getattr(prompt, 'version', '')}" if prompt is not None else "-"
        row: Row = (key, team, ctx.model, variant, pversion)
        add(self.pending, hour_of(time.time()), row, _values(charge))

    # --- idle time and the ledger -----------------------------------------------------------
    def _idle_rows(self) -> None:
        self.pricer.track(self.replicas())
        now_wall = time.time()
        for replica, meter in list(self.pricer.meters.items()):
            idle = meter.idle_usd()
            seen = self._idle_seen.get(replica, 0.0)
            if idle > seen:
                row: Row = (IDLE, "-", replica.model, "-", "-")
                add(self.pending, hour_of(now_wall), row, (idle - seen, 0, 0, 0, 0))
                self._idle_seen[replica] = idle

    async def flush(self) -> None:
        self._idle_rows()
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        try:
            await self.ledger.push(batch)
        except Exception as e:  # Redis away: keep the rows for the next flush
            self.flush_errors += 1
            log.warning("spend ledger push failed (%s); kept for the next try", type(e).__name__)
            for (hour, row), values in batch.items():
                add(self.pending, hour, row, values)

    async def read(self, since_hour: int) -> Table:
        """The ledger's rows from ``since_hour``, with what this gateway has not pushed yet."""
        self._idle_rows()
        table = dict(await self.ledger.read(since_hour))
        table = {k: list(v) for k, v in table.items()}
        for (hour, row), values in self.pending.items():
            if hour >= since_hour:
                add(table, hour, row, values)
        return table

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.spend.flush_interval_s)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spend-ledger")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()
        with contextlib.suppress(Exception):
            await self.ledger.close()


def _values(c: Charge) -> tuple[float, float, float, float, float]:
    return (c.usd, 1.0, float(c.prompt_tokens), float(c.completion_tokens),
            1.0 if c.estimated else 0.0)  # fmt: skip


class _IdleCollector(Collector):
    """Infra-cost replicas' idle cost and allocated cost, read at scrape time."""

    def __init__(self, acc: SpendAccounting) -> None:
        self.acc = acc

    def collect(self) -> Any:
        idle = CounterMetricFamily(
            "llmops_spend_idle_usd", "Cost of replica time with nothing in flight",
            labels=["model", "replica"],
        )  # fmt: skip
        total = CounterMetricFamily(
            "llmops_spend_capacity_usd", "Cost of infra-priced replicas since they were added",
            labels=["model", "replica"],
        )  # fmt: skip
        self.acc.pricer.track(self.acc.replicas())
        now = time.monotonic()
        for r, m in list(self.acc.pricer.meters.items()):
            idle.add_metric([r.model, r.url], m.idle_usd(now))
            total.add_metric([r.model, r.url], m.total_usd(now))
        yield idle
        yield total
        c = CounterMetricFamily("llmops_spend_ledger_errors", "Failed spend ledger pushes")
        c.add_metric([], self.acc.flush_errors)
        yield c
