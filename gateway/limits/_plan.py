"""What to count for one caller: the checks of its key and its team, built once per key.

A check is one counter: a token bucket (requests or tokens per minute), a set of concurrency
leases, or a calendar-window budget. Both limiters (memory, Redis) evaluate the same checks
with the same arithmetic, all-or-nothing: a refused request consumes nothing.
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass

from gateway._limits_config import BudgetPeriod, LimitsConfig, LimitSpec

BUCKET, CONCURRENCY, WINDOW = "b", "c", "w"
REQUESTS, TOKENS, CONCURRENT, BUDGET = "requests", "tokens", "concurrent", "budget"
BUDGET_USD = "budget_usd"  # counted in micro-dollars, so every store keeps integers
MICRO = 1_000_000
MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class Check:
    kind: str  # BUCKET | CONCURRENCY | WINDOW
    dim: str  # REQUESTS | TOKENS | CONCURRENT | BUDGET
    scope: str  # "key" | "team"
    name: str  # the key's or team's name
    key: str  # storage key (window checks get the window id appended per request)
    limit: int
    period: BudgetPeriod | None = None
    counts_tokens: bool = False  # charged the token estimate (set by __post_init__)
    counts_usd: bool = False  # charged the cost estimate, in micro-dollars

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts_tokens", self.dim in (TOKENS, BUDGET))
        object.__setattr__(self, "counts_usd", self.dim == BUDGET_USD)

    def cost(self, tokens: int, micro_usd: int) -> int:
        """What one request takes from this check."""
        if self.counts_tokens:
            return tokens
        return micro_usd if self.counts_usd else 1


@dataclass(frozen=True, slots=True)
class Plan:
    checks: tuple[Check, ...]
    needs_tokens: bool  # some check is charged the token estimate
    needs_release: bool  # concurrency to release or tokens (or money) to reconcile afterwards
    request_checks: tuple[int, ...] = ()  # indexes of requests-per-minute buckets
    token_checks: tuple[int, ...] = ()  # indexes of tokens-per-minute buckets
    needs_usd: bool = False  # some check is charged the cost estimate
    budget_checks: tuple[int, ...] = ()  # indexes of token and money budgets (the gauge)

    @property
    def empty(self) -> bool:
        return not self.checks


EMPTY_PLAN = Plan((), False, False)


def _checks(scope: str, name: str, spec: LimitSpec, prefix: str) -> list[Check]:
    tag = f"{prefix}{scope[0]}:{name}:"
    out: list[Check] = []
    if spec.requests_per_minute is not None:
        out.append(Check(BUCKET, REQUESTS, scope, name, tag + "rpm", spec.requests_per_minute))
    if spec.tokens_per_minute is not None:
        out.append(Check(BUCKET, TOKENS, scope, name, tag + "tpm", spec.tokens_per_minute))
    if spec.max_concurrent is not None:
        out.append(Check(CONCURRENCY, CONCURRENT, scope, name, tag + "conc", spec.max_concurrent))
    if spec.token_budget is not None:
        out.append(
            Check(WINDOW, BUDGET, scope, name, tag + f"budget:{spec.budget_period}:",
                  spec.token_budget, spec.budget_period)
        )  # fmt: skip
    if spec.budget_usd is not None:
        out.append(
            Check(WINDOW, BUDGET_USD, scope, name, tag + f"usd:{spec.budget_period}:",
                  round(spec.budget_usd * MICRO), spec.budget_period)
        )  # fmt: skip
    return out


def build_plan(
    key_name: str,
    key_limits: LimitSpec | None,
    team: str | None,
    cfg: LimitsConfig,
    prefix: str = "",
) -> Plan:
    spec = key_limits if key_limits is not None else cfg.default
    checks: list[Check] = []
    if spec is not None:
        checks += _checks("key", key_name, spec, prefix)
    team_spec = cfg.teams.get(team) if team is not None else None
    if team is not None and team_spec is not None:
        checks += _checks("team", team, team_spec, prefix)
    if not checks:
        return EMPTY_PLAN
    needs_tokens = any(c.counts_tokens for c in checks)
    needs_usd = any(c.counts_usd for c in checks)
    needs_release = needs_tokens or needs_usd or any(c.kind == CONCURRENCY for c in checks)
    return Plan(
        tuple(checks),
        needs_tokens,
        needs_release,
        tuple(i for i, c in enumerate(checks) if c.dim == REQUESTS),
        tuple(i for i, c in enumerate(checks) if c.dim == TOKENS),
        needs_usd,
        tuple(i for i, c in enumerate(checks) if c.dim in (BUDGET, BUDGET_USD)),
    )


def window(period: BudgetPeriod, now: float | None = None) -> tuple[str, float]:
    """The current UTC calendar window's id and the seconds until it ends."""
    now = time.time() if now is None else now
    if period == "month":
        tm = time.gmtime(now)
        y, m = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
        end = calendar.timegm((y, m, 1, 0, 0, 0, 0, 0, 0))
        return f"{tm.tm_year}{tm.tm_mon:02d}", end - now
    if period == "week":  # weeks start on Monday; 1970-01-01 was a Thursday
        n = math.floor((now / 86400 + 3) / 7)
        return f"w{n}", (n * 7 - 3) * 86400 + 7 * 86400 - now
    length = {"minute": 60, "hour": 3600, "day": 86400}[period]
    n = math.floor(now / length)
    return str(n), (n + 1) * length - now


@dataclass(slots=True)
class Outcome:
    """The answer of a limiter: allowed or not, and each check's remaining count."""

    allowed: bool
    remaining: list[float]
    refused: int = -1  # index of the refusing check
    retry_after_s: float = 0.0
    too_large: bool = False  # the request alone exceeds a limit: waiting will not help


def headers_for(plan: Plan, out: Outcome) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers from the most constrained bucket of each kind."""
    h: dict[str, str] = {}
    rem = out.remaining
    n = len(rem)
    for idx, suffix in ((plan.request_checks, "requests"), (plan.token_checks, "tokens")):
        best = -1
        for i in idx:
            if i < n and (best < 0 or rem[i] < rem[best]):
                best = i
        if best < 0:
            continue
        c = plan.checks[best]
        r = rem[best]
        h["x-ratelimit-limit-" + suffix] = str(c.limit)
        h["x-ratelimit-remaining-" + suffix] = str(max(0, math.floor(r)))
        h["x-ratelimit-reset-" + suffix] = format_duration(
            max(0.0, (c.limit - r) * MINUTE_S / c.limit)
        )
    return h


def format_duration(seconds: float) -> str:
    """OpenAI's style: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return "0s" if seconds <= 0 else f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{round(s, 3):g}s"
