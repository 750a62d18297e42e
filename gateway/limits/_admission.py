"""The rate-limit admission hook: reserve at admission, reconcile when the request ends.

The token estimate reserved up front is ``len(body) / chars_per_token`` plus ``max_tokens``
(or the configured default); when the request ends, the difference to the real usage is
given back or charged. A request that failed upstream is charged nothing; one whose usage is
unknown (a stream without ``include_usage``, a client that went away) keeps the estimate.
Money budgets work the same way, in micro-dollars: the spend accounting prices the estimate
at admission (``extensions["spend_estimate"]``) and the request at its end
(``extensions["spend"]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

from gateway._config import GatewayConfig
from gateway._context import RequestContext
from gateway._errors import GatewayError
from gateway._keys import Principal
from gateway._limits_config import LimitsConfig
from gateway._usage import estimate_tokens
from gateway.limits._memory import MemoryLimiter
from gateway.limits._plan import (
    BUDGET,
    BUDGET_USD,
    CONCURRENT,
    EMPTY_PLAN,
    MICRO,
    REQUESTS,
    Outcome,
    Plan,
    build_plan,
    headers_for,
)
from gateway.limits._redis_store import RedisLimiter

log = logging.getLogger("llmops.gateway.limits")

_ANONYMOUS = Principal("anonymous", None)
_MAX_PENDING_RELEASES = 10_000
_MESSAGES = {
    REQUESTS: "requests per minute",
    "tokens": "tokens per minute",
    CONCURRENT: "concurrent requests",
    BUDGET: "token budget",
    BUDGET_USD: "spend budget",
}


class RateLimiter:
    """Owns the plans (per key), the limiter backends and the Redis failure policy."""

    def __init__(self, config: GatewayConfig) -> None:
        self.cfg: LimitsConfig = config.limits
        self.memory = MemoryLimiter(self.cfg.concurrency_lease_s)
        self.redis: RedisLimiter | None = None
        if self.cfg.backend == "redis":
            self.redis = RedisLimiter(self.cfg)
        self._plans: dict[str, tuple[Principal, Plan]] = {}
        self.redis_down_until = 0.0
        self._releases: list[tuple[Plan, list[str], str, int, int]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.redis_errors = 0
        self.refused = 0
        # (scope, name, period, unit) -> share of the budget used, as last read at admission
        self.budget_used: dict[tuple[str, str, str, str], float] = {}

    # --- configuration ----------------------------------------------------------------------
    def reconfigure(self, config: GatewayConfig) -> None:
        """New limits take effect for the next request; counters of unchanged checks stay."""
        self.cfg = config.limits
        self._plans.clear()

    def plan_for(self, p: Principal) -> Plan:
        cached = self._plans.get(p.name)
        if cached is not None and cached[0] is p:
            return cached[1]
        prefix = self.cfg.redis.key_prefix if self.redis is not None else ""
        plan = build_plan(p.name, p.limits, p.team, self.cfg, prefix)
        if len(self._plans) > 100_000:  # runtime keys churned: never grow without bound
            self._plans.clear()
        self._plans[p.name] = (p, plan)
        return plan

    def estimate(self, ctx: RequestContext) -> int:
        return sum(estimate_tokens(ctx, self.cfg.chars_per_token,
                                   self.cfg.default_completion_tokens))  # fmt: skip

    # --- the hook ---------------------------------------------------------------------------
    async def admit(self, ctx: RequestContext) -> None:
        plan = self.plan_for(ctx.principal or _ANONYMOUS)
        if plan is EMPTY_PLAN:
            return
        tokens = self.estimate(ctx) if plan.needs_tokens else 0
        micro_usd = 0
        if plan.needs_usd:
            est = ctx.extensions.get("spend_estimate")
            micro_usd = round(est[1] * MICRO) if est is not None else 0
        member = ctx.request_id + ":" + str(id(ctx))
        backend: Any = self.memory
        if self.redis is not None:
            backend = self.redis
            if time.monotonic() < self.redis_down_until:
                backend = self._policy()
        if backend is None:  # Redis down, policy "open"
            return
        if backend is self.memory:
            out, keys = self.memory.acquire(plan, member, tokens, micro_usd)
        else:
            try:
                out, keys = await self._redis_acquire(plan, member, tokens, micro_usd)
            except Exception as e:
                backend = self._redis_failed(e)
                if backend is None:
                    return
                out, keys = self.memory.acquire(plan, member, tokens, micro_usd)
        ctx.response_headers.update(headers_for(plan, out))
        if plan.budget_checks:
            self._budget_gauge(plan, out)
        if not out.allowed:
            self.refused += 1
            raise self._refusal(plan, out)
        if plan.needs_release:
            ctx.on_finish.append(
                lambda c: self._finish(c, backend, plan, keys, member, tokens, micro_usd)
            )

    def _budget_gauge(self, plan: Plan, out: Outcome) -> None:
        rem = out.remaining
        for i in plan.budget_checks:
            if i < len(rem):
                c = plan.checks[i]
                unit = "usd" if c.counts_usd else "tokens"
                used = 1.0 - max(0.0, rem[i]) / c.limit
                self.budget_used[(c.scope, c.name, str(c.period), unit)] = used

    async def _redis_acquire(
        self, plan: Plan, member: str, tokens: int, micro_usd: int
    ) -> tuple[Outcome, list[str]]:
        assert self.redis is not None
        # Socket timeouts bound each I/O; this bounds the whole call (pool wait included).
        async with asyncio.timeout(self.cfg.redis.socket_timeout_s * 2):
            return await self.redis.acquire(plan, member, tokens, micro_usd)

    def _redis_failed(self, e: BaseException) -> Any:
        self._mark_down(e)
        return self._policy()

    def _mark_down(self, e: BaseException) -> None:
        self.redis_errors += 1
        if time.monotonic() >= self.redis_down_until:
            log.warning("rate-limit store unreachable (%s); policy %s for %.1fs",
                        type(e).__name__, self.cfg.failure_policy,
                        self.cfg.redis.retry_interval_s)  # fmt: skip
        self.redis_down_until = time.monotonic() + self.cfg.redis.retry_interval_s

    def _policy(self) -> Any:
        pol = self.cfg.failure_policy
        if pol == "closed":
            raise GatewayError(
                503,
                "Rate limits cannot be checked right now; the request was not run.",
                code="rate_limiter_unavailable",
                headers={"retry-after": str(max(1, math.ceil(self.cfg.redis.retry_interval_s)))},
            )
        return self.memory if pol == "local" else None

    def _refusal(self, plan: Plan, out: Outcome) -> GatewayError:
        c = plan.checks[out.refused]
        what = _MESSAGES.get(c.dim, c.dim)
        who = f"key '{c.name}'" if c.scope == "key" else f"team '{c.name}'"
        if c.dim == BUDGET_USD:
            budget = f"${c.limit / MICRO:,.2f} per {c.period}"
            msg = (f"The estimated cost of this request exceeds the spend budget of {who} "
                   f"({budget}): reduce the prompt or max_tokens." if out.too_large else
                   f"Spend budget reached for {who}: {budget}. It resets with the next "
                   f"{c.period} (UTC).")  # fmt: skip
        elif out.too_large:
            msg = (f"Request too large for the {what} limit of {c.limit} of {who}: reduce "
                   "the prompt or max_tokens.")  # fmt: skip
        else:
            msg = f"Rate limit reached for {who}: {what} limit {c.limit}. Try again later."
        retry = max(1, math.ceil(out.retry_after_s))
        headers = {
            "retry-after": str(retry),
            "retry-after-ms": str(math.ceil(out.retry_after_s * 1000)),
        }
        code = "request_too_large" if out.too_large else (
            "insufficient_quota" if c.dim in (BUDGET, BUDGET_USD) else "rate_limit_exceeded"
        )  # fmt: skip
        return GatewayError(429, msg, code=code, headers=headers)

    # --- completion -------------------------------------------------------------------------
    def _finish(
        self, ctx: RequestContext, backend: Any, plan: Plan, keys: list[str], member: str,
        reserved: int, reserved_usd: int,
    ) -> None:  # fmt: skip
        delta = usd_delta = 0
        if plan.needs_tokens:
            actual = _actual_tokens(ctx, reserved)
            delta = actual - reserved
        if plan.needs_usd:
            charge = ctx.extensions.get("spend")  # None: nothing ran, or the model is unpriced
            usd_delta = (round(charge.usd * MICRO) if charge is not None else 0) - reserved_usd
        if backend is self.memory:
            self.memory.release(plan, keys, member, delta, usd_delta)
            return
        if len(self._releases) >= _MAX_PENDING_RELEASES:
            return  # Redis is slow: leases expire on their own, reconciliation is skipped
        # Releases are batched: one pipelined round trip carries all that ended meanwhile.
        self._releases.append((plan, keys, member, delta, usd_delta))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_releases())

    async def _flush_releases(self) -> None:
        assert self.redis is not None
        while self._releases:
            batch, self._releases = self._releases, []
            try:
                async with asyncio.timeout(self.cfg.redis.socket_timeout_s * 2):
                    await self.redis.release_many(batch)
            except Exception as e:  # a lost release only delays: the lease expires
                self._mark_down(e)

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(2):
                    await self._flusher
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.close()


def _actual_tokens(ctx: RequestContext, reserved: int) -> int:
    # Chat names for every route: gateway._usage translates the Responses API's input_tokens
    # and output_tokens when it reads them.
    usage = ctx.usage
    if usage:
        total = usage.get("total_tokens")
        if not isinstance(total, int):
            total = sum(
                v for k in ("prompt_tokens", "completion_tokens")
                if isinstance(v := usage.get(k), int)
            )  # fmt: skip
        return max(0, total)
    if ctx.status >= 400 and ctx.status != 499 and ctx.ttft_s is None:
        return 0  # nothing ran upstream (or it failed before output): charge nothing
    return reserved
