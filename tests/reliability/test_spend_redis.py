"""Money budgets and the spend ledger shared by two gateways on a real redis-server.

Over-admission is measured as the token limits' is: a burst over both gateways, then the
spend the budget let through. The fake upstream answers fixed usage (7 + 5 tokens)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from gateway import GatewayConfig
from gateway._plugins import default_plugins
from tests.fakes.servers import GatewayServer
from tests.reliability.conftest import ADMIN, KEY_A, KEY_B, KEY_C, MSG, auth, config_dict
from tests.reliability.fakes import RedisProcess, SlowUpstream

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
IN, OUT = 1000.0, 2000.0
PER_REQUEST = (7 * IN + 5 * OUT) / 1e6  # $0.017


def _gateways(upstream: SlowUpstream, redis_url: str, **limits: Any) -> list[GatewayServer]:
    cfg = config_dict(
        [upstream.url],
        limits={"backend": "redis", "failure_policy": "closed",
                "redis": {"url": redis_url, "key_prefix": f"t{time.monotonic_ns()}:",
                          "socket_timeout_s": 2, "connect_timeout_s": 2},
                **limits},
    )  # fmt: skip
    cfg["models"][0]["price"] = {"input_per_1m": IN, "output_per_1m": OUT}
    cfg["spend"] = {"flush_interval_s": 0.2}
    out = []
    for _ in range(2):
        c = GatewayConfig(**cfg)
        out.append(GatewayServer(c, default_plugins(c)).start())
    return out


async def _blast(urls: list[str], key: str, n: int, conc: int) -> list[int]:
    sem = asyncio.Semaphore(conc)
    body = {"model": "chat", "messages": MSG, "max_tokens": 5}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=conc)) as c:

        async def one(i: int) -> int:
            async with sem:
                r = await c.post(urls[i % len(urls)] + "/v1/chat/completions", json=body,
                                 headers=auth(key))  # fmt: skip
                return r.status_code

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def _spend(g: GatewayServer, by: str) -> dict[str, Any]:
    r = httpx.get(g.url + "/admin/spend", params={"by": by, "since": "1h"},
                  headers=auth(ADMIN))  # fmt: skip
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_a_money_budget_holds_across_two_gateways(
    upstream: SlowUpstream, redis_proc: RedisProcess
) -> None:
    budget = 1.0
    g1, g2 = _gateways(upstream, redis_proc.url,
                       default={"budget_usd": budget, "budget_period": "day"})  # fmt: skip
    try:
        urls = [g1.url, g2.url]
        codes = asyncio.run(_blast(urls, KEY_C, 240, 32))
        time.sleep(0.3)  # reconciliations ride the next batched release
        # Then one at a time until refused: what reservations in flight held back is used.
        for i in range(60):
            r = httpx.post(urls[i % 2] + "/v1/chat/completions", headers=auth(KEY_C),
                           json={"model": "chat", "messages": MSG, "max_tokens": 5})  # fmt: skip
            codes.append(r.status_code)
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "insufficient_quota"
                break
            time.sleep(0.02)
        admitted = codes.count(200)
        spent = admitted * PER_REQUEST
        over = spent / budget - 1
        print(f"\nbudget ${budget}: admitted {admitted} requests over 2 gateways, spent "
              f"${spent:.3f} ({over:+.2%} of the budget)")  # fmt: skip
        assert set(codes) <= {200, 429}
        assert len(upstream.requests) == admitted
        assert over <= 0.01
        assert spent > budget - 2 * PER_REQUEST  # the budget was used, not just guarded
        time.sleep(0.5)  # both ledgers flushed
        for g in (g1, g2):  # either gateway reports both gateways' spend
            rep = _spend(g, "key")
            assert rep["store"] == "redis"
            carol = next(row for row in rep["data"] if row["key"] == "carol")
            assert carol["requests"] == admitted
            assert carol["usd"] == pytest.approx(spent)
    finally:
        g1.stop()
        g2.stop()


def test_team_spend_adds_up_across_gateways(
    upstream: SlowUpstream, redis_proc: RedisProcess
) -> None:
    g1, g2 = _gateways(upstream, redis_proc.url)
    try:
        asyncio.run(_blast([g1.url, g2.url], KEY_A, 10, 4))
        asyncio.run(_blast([g2.url, g1.url], KEY_B, 6, 4))
        time.sleep(0.6)
        ml = next(row for row in _spend(g1, "team")["data"] if row["team"] == "ml")
        assert ml["requests"] == 16 and ml["usd"] == pytest.approx(16 * PER_REQUEST)
        assert g1.metric_value("llmops_spend_usd_total") + g2.metric_value(
            "llmops_spend_usd_total") == pytest.approx(16 * PER_REQUEST)  # fmt: skip
    finally:
        g1.stop()
        g2.stop()
