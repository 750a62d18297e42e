"""Replica choice: one small class per strategy, as in vLLM's production-stack router."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from gateway._replicas import Replica


class RoutingStrategy(Protocol):
    """``ctx`` is the request's context (gateway._context.RequestContext): a strategy that
    reads the prompt (prefix) takes it from ``ctx.data``; the others ignore it."""

    def choose(
        self,
        replicas: Sequence[Replica],
        affinity_key: str | None = None,
        exclude: Collection[Replica] = (),
        ctx: Any = None,
    ) -> Replica | None: ...


def _candidates(replicas: Sequence[Replica], exclude: Collection[Replica]) -> list[Replica]:
    now = time.monotonic()
    return [r for r in replicas if r.available(now) and r not in exclude]


class LeastOutstanding:
    """Fewest in-flight requests per unit of weight; ties rotate.

    With an affinity key (the request's ``user`` or ``x-session-id``), weighted rendezvous
    hashing picks the same healthy replica every time, so vLLM's prefix cache is reused; when
    that replica goes away only its keys move.
    """

    def __init__(self) -> None:
        self._turn = 0

    def choose(
        self,
        replicas: Sequence[Replica],
        affinity_key: str | None = None,
        exclude: Collection[Replica] = (),
        ctx: Any = None,
    ) -> Replica | None:
        candidates = _candidates(replicas, exclude)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        if affinity_key:
            return _rendezvous(candidates, affinity_key.encode())
        self._turn += 1
        n = len(candidates)
        best: Replica | None = None
        best_load = 0.0
        for i in range(n):
            r = candidates[(self._turn + i) % n]
            load = (r.in_flight + 1) / r.weight
            if best is None or load < best_load:
                best, best_load = r, load
        return best


class RoundRobin:
    """Each healthy replica in turn, by weight (smooth weighted round robin, as nginx does).
    Ignores load and affinity: the baseline a simulator compares the others with."""

    def __init__(self) -> None:
        self._current: dict[Replica, float] = {}

    def choose(
        self,
        replicas: Sequence[Replica],
        affinity_key: str | None = None,
        exclude: Collection[Replica] = (),
        ctx: Any = None,
    ) -> Replica | None:
        candidates = _candidates(replicas, exclude)
        if not candidates:
            return None
        cur = self._current
        total = 0.0
        best = candidates[0]
        for r in candidates:
            cur[r] = cur.get(r, 0.0) + r.weight
            total += r.weight
            if cur[r] > cur[best]:
                best = r
        cur[best] -= total
        if len(cur) > 4 * len(replicas):  # replicas removed by a reload
            keep = set(replicas)
            for r in [r for r in cur if r not in keep]:
                del cur[r]
        return best


class RandomChoice:
    """A healthy replica at random, by weight. Seeded for reproducible simulations."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(
        self,
        replicas: Sequence[Replica],
        affinity_key: str | None = None,
        exclude: Collection[Replica] = (),
        ctx: Any = None,
    ) -> Replica | None:
        candidates = _candidates(replicas, exclude)
        if not candidates:
            return None
        return self._rng.choices(candidates, weights=[r.weight for r in candidates])[0]


def _rendezvous(candidates: Sequence[Replica], key: bytes) -> Replica:
    best = candidates[0]
    best_score = -math.inf
    for r in candidates:
        h = int.from_bytes(hashlib.blake2b(key + b"|" + r.key, digest_size=8).digest(), "big")
        # Weighted rendezvous: -w / ln(u) with u uniform in (0, 1).
        u = (h + 1) / (2**64 + 1)
        score = -r.weight / math.log(u)
        if score > best_score:
            best, best_score = r, score
    return best
