"""Per-variant request counts over a sliding window, in wall-clock slots.

Slots are numbered by wall-clock time (``epoch = time // slot_s``), so several gateways that
add their counts for the same slot into Redis add up to one window. Latency is kept as a
histogram on fixed log-spaced edges, which adds across gateways where quantiles do not.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

SLOTS = 12
# 5 ms .. ~10 min, 12% apart: a p95 read from it is within 6% of the exact one.
LATENCY_EDGES: tuple[float, ...] = tuple(0.005 * 1.12**i for i in range(109))


@dataclass(slots=True)
class Tally:
    """Requests, errors (5xx) and the latency histogram of successful requests."""

    n: int = 0
    errors: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES) + 1))

    def add(self, other: Tally) -> None:
        self.n += other.n
        self.errors += other.errors
        for i, c in enumerate(other.hist):
            if c:
                self.hist[i] += c

    @property
    def error_rate(self) -> float:
        return self.errors / self.n if self.n else 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of latency (upper edge of the slot it falls in)."""
        total = sum(self.hist)
        if total == 0:
            return None
        rank = math.ceil(q * total)
        seen = 0
        for i, c in enumerate(self.hist):
            seen += c
            if seen >= rank:
                return LATENCY_EDGES[i] if i < len(LATENCY_EDGES) else math.inf
        return math.inf

    def to_fields(self) -> dict[str, int]:
        out = {"n": self.n, "e": self.errors}
        out.update({f"b{i}": c for i, c in enumerate(self.hist) if c})
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, int]) -> Tally:
        t = cls(n=int(fields.get("n", 0)), errors=int(fields.get("e", 0)))
        for k, v in fields.items():
            if k.startswith("b"):
                i = int(k[1:])
                if 0 <= i < len(t.hist):
                    t.hist[i] = int(v)
        return t


def total(slots: list[Tally], epochs: range, since_epoch: int | None = None) -> Tally:
    """The sum of a window's slots, leaving out those at or before ``since_epoch``."""
    out = Tally()
    for e, t in zip(epochs, slots, strict=True):
        if since_epoch is None or e > since_epoch:
            out.add(t)
    return out


def record_into(t: Tally, ok: bool, error: bool, latency_s: float) -> None:
    t.n += 1
    if error:
        t.errors += 1
    elif ok:
        t.hist[bisect.bisect_left(LATENCY_EDGES, latency_s)] += 1


class SlidingWindow:
    """This gateway's own counts per (variant, slot), and the part not yet pushed to Redis."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.slot_s = window_s / SLOTS
        self._slots: dict[tuple[str, int], Tally] = {}
        self._pending: dict[tuple[str, int], Tally] = {}

    def epoch(self, now: float) -> int:
        return int(now // self.slot_s)

    def record(self, variant: str, now: float, *, ok: bool, error: bool, latency_s: float) -> None:
        key = (variant, self.epoch(now))
        for table in (self._slots, self._pending):
            t = table.get(key)
            if t is None:
                t = table[key] = Tally()
            record_into(t, ok, error, latency_s)

    def epochs(self, now: float) -> range:
        """The slots that make up the window ending now (the current one included)."""
        e = self.epoch(now)
        return range(e - SLOTS + 1, e + 1)

    def slots(self, variant: str, now: float) -> list[Tally]:
        """The window's slots, oldest first (empty ones included)."""
        return [self._slots.get((variant, e)) or Tally() for e in self.epochs(now)]

    def drain(self) -> dict[tuple[str, int], Tally]:
        """Counts recorded since the last drain (to push to the shared store)."""
        pending, self._pending = self._pending, {}
        return pending

    def restore(self, pending: dict[tuple[str, int], Tally]) -> None:
        """Put drained counts back (a push that failed), to go out with the next one."""
        for key, t in pending.items():
            self._pending.setdefault(key, Tally()).add(t)

    def prune(self, now: float) -> None:
        oldest = self.epoch(now) - SLOTS
        for key in [k for k in self._slots if k[1] <= oldest]:
            del self._slots[key]
