"""In-process counters for one gateway replica: plain dicts, no locks (one event loop).

Memory is bounded by the number of keys and teams (one small entry per check) plus, per
concurrency check, at most ``limit`` leases.
"""

from __future__ import annotations

import time

from gateway.limits._plan import BUCKET, CONCURRENCY, MINUTE_S, Outcome, Plan, window

_RETRY_CONCURRENCY_S = 1.0


class MemoryLimiter:
    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._buckets: dict[str, list[float]] = {}  # key -> [level, monotonic time]
        self._leases: dict[str, dict[str, float]] = {}  # key -> member -> expiry
        self._windows: dict[str, list[float | str]] = {}  # key -> [window id, used]

    def acquire(
        self, plan: Plan, member: str, tokens: int, micro_usd: int = 0
    ) -> tuple[Outcome, list[str]]:
        """Try to take what the request needs from every check; all or nothing.

        Returns the outcome and the storage keys used (window keys carry the window id).
        """
        now = time.monotonic()
        wall = 0.0
        checks = plan.checks
        remaining: list[float] = []
        keys: list[str] = []
        for i, c in enumerate(checks):
            cost = c.cost(tokens, micro_usd)
            if c.kind == BUCKET:
                b = self._buckets.get(c.key)
                rate = c.limit / MINUTE_S
                level = float(c.limit) if b is None else min(c.limit, b[0] + (now - b[1]) * rate)
                remaining.append(level)
                keys.append(c.key)
                if level < cost:
                    return _refused(remaining, i, (cost - level) / rate, cost > c.limit), keys
            elif c.kind == CONCURRENCY:
                held = self._leases.get(c.key)
                n = len(held) if held else 0
                if held and n >= c.limit:
                    for m in [m for m, exp in held.items() if exp <= now]:
                        del held[m]
                    n = len(held)
                remaining.append(c.limit - n)
                keys.append(c.key)
                if n + 1 > c.limit:
                    return _refused(remaining, i, _RETRY_CONCURRENCY_S, False), keys
            else:
                wall = wall or time.time()
                assert c.period is not None
                wid, left_s = window(c.period, wall)
                w = self._windows.get(c.key)
                used = float(w[1]) if w is not None and w[0] == wid else 0.0
                remaining.append(c.limit - used)
                keys.append(c.key + wid)
                if used + cost > c.limit:
                    return _refused(remaining, i, left_s, cost > c.limit), keys
        # Every check passed: take.
        for i, c in enumerate(checks):
            cost = c.cost(tokens, micro_usd)
            if c.kind == BUCKET:
                remaining[i] -= cost
                b = self._buckets.get(c.key)
                if b is None:
                    self._buckets[c.key] = [remaining[i], now]
                else:
                    b[0], b[1] = remaining[i], now
            elif c.kind == CONCURRENCY:
                self._leases.setdefault(c.key, {})[member] = now + self.lease_s
                remaining[i] -= 1
            else:
                wid = keys[i][len(c.key) :]
                remaining[i] -= cost
                self._windows[c.key] = [wid, c.limit - remaining[i]]
        return Outcome(True, remaining), keys

    def release(
        self, plan: Plan, keys: list[str], member: str, token_delta: int, usd_delta: int = 0
    ) -> None:
        """Free concurrency leases and correct token (and micro-dollar) counts by
        ``actual - reserved``."""
        now = time.monotonic()
        for c, key in zip(plan.checks, keys, strict=True):
            if c.kind == CONCURRENCY:
                held = self._leases.get(c.key)
                if held is not None:
                    held.pop(member, None)
                continue
            delta = token_delta if c.counts_tokens else usd_delta if c.counts_usd else 0
            if not delta:
                continue
            if c.kind == BUCKET:
                b = self._buckets.get(c.key)
                if b is not None:
                    rate = c.limit / MINUTE_S
                    level = min(c.limit, b[0] + (now - b[1]) * rate)
                    self._buckets[c.key] = [min(float(c.limit), level - delta), now]
            else:
                w = self._windows.get(c.key)
                if w is not None and c.key + str(w[0]) == key:
                    w[1] = max(0.0, float(w[1]) + delta)


def _refused(remaining: list[float], i: int, retry_s: float, too_large: bool) -> Outcome:
    return Outcome(False, remaining, i, max(retry_s, 0.001), too_large)
