"""One replica's cost, shared out to the tokens it serves while busy; idle time apart.

The replica costs ``usd_per_hour`` whether it works or not. While at least one request is in
flight it is busy, and that cost belongs to the requests it served: when a request ends it is
charged its weighted tokens (prompt x ``prefill_weight`` + completion) times the replica's
current cost per token, which is the busy cost not charged yet over the weighted tokens that
share it (this request's, plus the requests still in flight at the window's mean tokens per
request). Nothing is charged twice: the charges add up to the busy cost, exactly so whenever
the replica drains. Time with nothing in flight is idle and counted apart (``idle_usd``).
"""

from __future__ import annotations

import math
import time

from gateway._replicas import Replica
from gateway._spend_config import InfraCost

_SLOTS = 12


class ReplicaMeter:
    __slots__ = ("_ids", "_requests", "_slot_s", "_start_busy", "_tokens", "allocated_usd",
                 "cost", "rate", "replica", "usd_per_token")  # fmt: skip

    def __init__(self, replica: Replica, cost: InfraCost, window_s: float) -> None:
        self.replica = replica
        self.cost = cost
        self.rate = cost.usd_per_hour / 3600.0  # USD per second
        self._slot_s = window_s / _SLOTS
        self._ids = [-1] * _SLOTS
        self._tokens = [0.0] * _SLOTS  # weighted tokens served per slot
        self._requests = [0] * _SLOTS
        # Busy time before this meter existed is nobody's to pay: count from here.
        self._start_busy = replica.busy_until(time.monotonic())
        self.allocated_usd = 0.0
        self.usd_per_token: float | None = None  # the last rate charged: admission's estimate

    def weighted(self, prompt: int, completion: int) -> float:
        return prompt * self.cost.prefill_weight + completion

    def _mean_tokens(self, now: float) -> float:
        """Weighted tokens per request over the window (0 when it is empty)."""
        oldest = math.floor(now / self._slot_s) - _SLOTS + 1
        tokens = 0.0
        n = 0
        for sid, t, r in zip(self._ids, self._tokens, self._requests, strict=True):
            if sid >= oldest:
                tokens += t
                n += r
        return tokens / n if n else 0.0

    def _record(self, now: float, weighted_tokens: float) -> None:
        sid = math.floor(now / self._slot_s)
        i = sid % _SLOTS
        if self._ids[i] != sid:
            self._ids[i], self._tokens[i], self._requests[i] = sid, 0.0, 0
        self._tokens[i] += weighted_tokens
        self._requests[i] += 1

    def unallocated_usd(self, now: float | None = None) -> float:
        """Busy cost no request has been charged yet."""
        now = time.monotonic() if now is None else now
        busy = self.replica.busy_until(now) - self._start_busy
        return max(0.0, self.rate * busy - self.allocated_usd)

    def charge(self, weighted_tokens: float, now: float | None = None) -> float:
        """The ending request's share of the busy cost not charged yet."""
        now = time.monotonic() if now is None else now
        in_flight = max(0, self.replica.in_flight)  # this request has left already
        sharing = weighted_tokens + in_flight * self._mean_tokens(now)
        self._record(now, weighted_tokens)
        if sharing <= 0:
            return 0.0
        self.usd_per_token = self.unallocated_usd(now) / sharing
        usd = self.usd_per_token * weighted_tokens
        self.allocated_usd += usd
        return usd

    def total_usd(self, now: float | None = None) -> float:
        """What the replica has cost since it was added."""
        now = time.monotonic() if now is None else now
        return self.rate * (now - self.replica.since)

    def idle_usd(self, now: float | None = None) -> float:
        """The cost of the time nothing was in flight, since the replica was added."""
        now = time.monotonic() if now is None else now
        return self.rate * max(0.0, now - self.replica.since - self.replica.busy_until(now))
