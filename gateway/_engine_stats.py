"""What vLLM says about its own load, read from each replica's ``/metrics``: requests waiting
and running, KV cache usage, and the KV capacity in tokens (``vllm:cache_config_info``).

Routing (the prefix strategy) and load shedding read these; one parser and one poller serve
both (one scrape per replica per interval, however many consumers). A replica
whose metrics cannot be read keeps no stale numbers: its stats are cleared, and the readers
fall back to what the gateway counts itself (requests in flight).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from gateway._replicas import Replica

log = logging.getLogger("llmops.gateway.engine_stats")

_SAMPLE = re.compile(rb"^(vllm:[a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)\s*$", re.M)
_LABEL = re.compile(rb'([a-zA-Z_]+)="([^"]*)"')
_MAX_BODY = 8 << 20


def parse(body: bytes, replica: Replica) -> bool:
    """Set the replica's engine stats from a Prometheus text body; False when it has none.

    Values are summed over label sets (one engine may report per model name or per engine
    index). ``vllm:kv_cache_usage_perc`` (``gpu_cache_usage_perc`` on older vLLM) is a share
    in [0, 1]; ``cache_config_info`` carries ``num_gpu_blocks`` and ``block_size`` as labels.
    """
    waiting = running = 0.0
    usage: list[float] = []
    capacity = 0
    found = False
    for name, labels, value in _SAMPLE.findall(body):
        if value == b"NaN":
            continue
        if name == b"vllm:num_requests_waiting":
            waiting += float(value)
            found = True
        elif name == b"vllm:num_requests_running":
            running += float(value)
        elif name in (b"vllm:kv_cache_usage_perc", b"vllm:gpu_cache_usage_perc"):
            usage.append(float(value))
        elif name == b"vllm:cache_config_info" and labels:
            info = dict(_LABEL.findall(labels))
            try:
                capacity += int(info.get(b"num_gpu_blocks", b"0")) * int(
                    info.get(b"block_size", b"0")
                )
            except ValueError:
                pass
    if not found:
        clear(replica)
        return False
    replica.waiting = int(waiting)
    replica.running = int(running)
    replica.kv_usage = max(usage) if usage else 0.0
    replica.kv_tokens = capacity
    replica.stats_at = time.monotonic()
    return True


def clear(replica: Replica) -> None:
    replica.waiting = replica.running = replica.kv_tokens = 0
    replica.kv_usage = 0.0
    replica.stats_at = 0.0


async def scrape(session: aiohttp.ClientSession, replica: Replica, timeout_s: float) -> bool:
    """One ``GET /metrics``; False (stats cleared) when it fails or has no vLLM series."""
    headers = {"authorization": f"Bearer {replica.api_key}"} if replica.api_key else None
    try:
        async with session.get(
            replica.url + "/metrics", headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:  # fmt: skip
            if resp.status != 200:
                clear(replica)
                return False
            body = await resp.content.read(_MAX_BODY)
    except (aiohttp.ClientError, TimeoutError):
        clear(replica)
        return False
    return parse(body, replica)


@dataclass(frozen=True, slots=True)
class Want:
    """What one consumer asks of the poller this round: these replicas, this often."""

    replicas: list[Replica]
    interval_s: float
    timeout_s: float


IDLE_S = 1.0  # how often an idle poller looks again for a consumer (a reload may add one)


class Poller:
    """The one scrape loop of a gateway. Routing and load shedding both read vLLM's load, so
    each registers what it wants and every replica is scraped once a round, at the shortest
    interval anyone asks for, instead of once per consumer on schedules of their own."""

    def __init__(self) -> None:
        self.consumers: dict[str, Callable[[], Want | None]] = {}

    def want(self, name: str, fn: Callable[[], Want | None]) -> None:
        """Register (or replace) a consumer; ``fn`` is read each round, so reloads follow."""
        self.consumers[name] = fn

    def merged(self) -> Want | None:
        """The union of the replicas wanted, the shortest interval and timeout; None if idle."""
        wants: list[Want] = []
        for name, fn in list(self.consumers.items()):
            try:
                w = fn()
            except Exception:  # one consumer's bug must not stop the others' stats
                log.exception("engine stats consumer %s failed", name)
                continue
            if w is not None:
                wants.append(w)
        if not wants:
            return None
        seen: dict[int, Replica] = {}
        for w in wants:
            for r in w.replicas:
                seen.setdefault(id(r), r)
        return Want(
            list(seen.values()),
            min(w.interval_s for w in wants),
            min(w.timeout_s for w in wants),
        )

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Scrape what ``merged()`` names, round after round. A replica whose metrics cannot
        be read is logged once until it can be."""
        unreadable: set[str] = set()
        while True:
            w = self.merged()
            if w is None:
                await asyncio.sleep(IDLE_S)
                continue
            results = await asyncio.gather(
                *(scrape(session, r, w.timeout_s) for r in w.replicas), return_exceptions=True
            )
            for r, ok in zip(w.replicas, results, strict=True):
                if ok is True:
                    unreadable.discard(r.url)
                elif r.url not in unreadable:
                    unreadable.add(r.url)
                    log.warning(
                        "no vLLM metrics from %s (%s): routing and load shedding use the "
                        "gateway's own in-flight count for it",
                        r.url,
                        ok if isinstance(ok, BaseException) else "unreachable or no vllm: series",
                    )
            await asyncio.sleep(w.interval_s)


_POLLERS: weakref.WeakKeyDictionary[object, Poller] = weakref.WeakKeyDictionary()


def poller_for(owner: object) -> Poller:
    """The poller of one gateway (keyed by its state), so consumers built apart share it."""
    p = _POLLERS.get(owner)
    if p is None:
        p = _POLLERS[owner] = Poller()
    return p
