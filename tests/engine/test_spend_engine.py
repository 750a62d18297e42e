"""Infra-cost allocation on the real CPU engine: a fixed workload (sequential requests, a
concurrent burst, idle gaps) served by one vLLM replica priced per hour; the cost allocated
to requests plus the idle cost must add up to the configured cost times the wall time.

This is an accounting identity measured on real traffic, not a timing assertion: the
allocation shares each window's busy cost over the tokens served in it, so it can only miss
by the busy time its sliding window has not yet shared out."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from gateway import GatewayConfig, hash_key
from gateway._plugins import default_plugins
from tests.engine.conftest import ENGINE_KEY, MODEL
from tests.fakes.servers import GatewayServer

pytestmark = pytest.mark.engine
ADMIN = "sk-engine-spend-admin"
USD_PER_HOUR = 3600.0  # $1 a second: the numbers read as seconds
QUESTION = [{"role": "user", "content": "Name three colours."}]


async def test_allocated_plus_idle_is_the_replica_cost(engine: Any) -> None:
    cfg = GatewayConfig(
        server={"request_timeout_s": 120, "connect_timeout_s": 2},
        auth={"admin_sha256": hash_key(ADMIN),
              "keys": [{"name": "test", "sha256": hash_key(ENGINE_KEY)}]},
        health={"interval_s": 1, "failure_threshold": 1000},
        models=[{"name": "priced", "served_name": MODEL, "upstreams": [{"url": engine.base_url}],
                 "cost": {"usd_per_hour": USD_PER_HOUR, "prefill_weight": 0.1}}],
        limits={"enabled": False},
        spend={"window_s": 30, "flush_interval_s": 0.5},
    )  # fmt: skip
    gw = GatewayServer(cfg, default_plugins(cfg)).start()
    try:
        c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=ENGINE_KEY, max_retries=0)

        async def ask(n: int) -> None:
            await c.chat.completions.create(model="priced", messages=QUESTION, max_tokens=n,
                                            temperature=0)  # fmt: skip

        await asyncio.sleep(1.0)  # idle from the start
        for n in (8, 16, 32, 8, 16, 32):
            await ask(n)
        await asyncio.sleep(1.5)  # idle
        for _ in range(3):
            await asyncio.gather(*(ask(16) for _ in range(4)))
        stream = await c.chat.completions.create(
            model="priced", messages=QUESTION, max_tokens=24, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        async for _ in stream:
            pass
        await asyncio.sleep(1.0)  # idle to the end

        allocated = gw.metric_value("llmops_spend_usd_total", model="priced")
        idle = gw.metric_value("llmops_spend_idle_usd_total", model="priced")
        capacity = gw.metric_value("llmops_spend_capacity_usd_total", model="priced")
        gap = (allocated + idle) / capacity - 1
        print(f"\nreplica at ${USD_PER_HOUR}/h: capacity ${capacity:.3f} = allocated "
              f"${allocated:.3f} + idle ${idle:.3f} {gap:+.2%}")  # fmt: skip
        assert allocated > 0 and idle > 3.0  # at least the 3.5 s of idle gaps
        assert abs(gap) <= 0.02

        async with httpx.AsyncClient() as http:
            r = await http.get(gw.url + "/admin/spend", params={"by": "model", "since": "1h"},
                               headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
        rows = {row["model"]: row for row in r.json()["data"]}
        assert rows["priced"]["requests"] == 19
        assert rows["priced"]["usd"] == pytest.approx(allocated, rel=1e-6)
        assert "(idle) priced" in rows and rows["(idle) priced"]["requests"] == 0
    finally:
        gw.stop()
