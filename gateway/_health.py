"""Active health checks: poll each replica's ``/health`` and publish the result."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from gateway._replicas import Replica
from gateway._state import GatewayState

log = logging.getLogger("llmops.gateway.health")


async def check_replica(state: GatewayState, replica: Replica) -> bool:
    """One check. A refused connection marks the replica down at once; a slow or failing
    answer only after ``failure_threshold`` in a row, because a CPU-saturated engine answers
    /health late while it is still streaming tokens fine."""
    cfg = state.config.health
    headers = {"authorization": f"Bearer {replica.api_key}"} if replica.api_key else None
    refused = False
    try:
        async with state.session.get(
            replica.url + "/health",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=cfg.timeout_s),
        ) as resp:
            await resp.read()
            ok = resp.status == 200
    except aiohttp.ClientConnectorError:
        ok, refused = False, True
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    replica.check_failures = 0 if ok else replica.check_failures + 1
    healthy = ok or (
        replica.healthy and not refused and replica.check_failures < cfg.failure_threshold
    )
    if healthy != replica.healthy:
        log.warning("replica %s of %s is now %s", replica.url, replica.model,
                    "healthy" if healthy else "unhealthy")  # fmt: skip
    replica.healthy = healthy
    state.metrics.set_healthy(replica.model, replica.url, replica.available(time.monotonic()))
    return healthy


async def check_all(state: GatewayState) -> None:
    replicas = [r for pool in state.pools.values() for r in pool.replicas]
    await asyncio.gather(*(check_replica(state, r) for r in replicas))


async def health_loop(state: GatewayState) -> None:
    """Runs for the app's lifetime; one slow replica never delays the others' checks."""
    while True:
        await asyncio.sleep(state.config.health.interval_s)
        try:
            await check_all(state)
        except Exception:  # a checker bug must not stop future checks
            log.exception("health check round failed")
