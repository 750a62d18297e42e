"""Limits shared through a real redis-server by two gateway replicas; Redis failures."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from typing import Any

import httpx
import pytest

from gateway import hash_key
from tests.fakes.servers import GatewayServer
from tests.reliability.conftest import KEY_A, KEY_B, KEY_C, MSG, auth, config_dict, start_gateway
from tests.reliability.fakes import RedisProcess, SlowUpstream

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _cfg(upstream: SlowUpstream, redis_url: str, **limits: Any) -> dict[str, Any]:
    prefix = f"t{time.monotonic_ns()}:"  # a fresh namespace per test
    return config_dict(
        [upstream.url],
        limits={
            "backend": "redis",
            "redis": {"url": redis_url, "key_prefix": prefix, "retry_interval_s": 0.5},
            **limits,
        },
    )


async def _blast(urls: list[str], key: str, n: int, conc: int) -> list[int]:
    sem = asyncio.Semaphore(conc)
    body = {"model": "chat", "messages": MSG}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=conc)) as c:

        async def one(i: int) -> int:
            async with sem:
                r = await c.post(
                    urls[i % len(urls)] + "/v1/chat/completions", json=body, headers=auth(key)
                )
                return r.status_code

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_exact_request_count_across_two_gateways(
    upstream: SlowUpstream, redis_proc: RedisProcess
) -> None:
    limit = 60
    # Policy "closed" and roomy timeouts: a slow store shows up as 503s, never as silent
    # over-admission (fail-open is tested below).
    cfg = _cfg(
        upstream, redis_proc.url, failure_policy="closed", default={"requests_per_minute": limit}
    )
    cfg["limits"]["redis"].update(socket_timeout_s=2, connect_timeout_s=2)
    g1, g2 = start_gateway(cfg), start_gateway(cfg)
    try:
        t0 = time.monotonic()
        codes = asyncio.run(_blast([g1.url, g2.url], KEY_C, 240, 32))
        elapsed = time.monotonic() - t0
        admitted = codes.count(200)
        # Tolerance: the bucket refills limit/60 per second while the burst runs, nothing more.
        tolerance = math.ceil(limit / 60 * elapsed)
        print(
            f"\nrpm={limit}: admitted {admitted} of 240 over 2 gateways in {elapsed:.2f}s "
            f"(allowed {limit}..{limit + tolerance})"
        )
        assert set(codes) <= {200, 429, 503}
        assert limit - codes.count(503) <= admitted <= limit + tolerance
        assert len(upstream.requests) == admitted
    finally:
        g1.stop()
        g2.stop()


def test_concurrency_and_budget_shared(upstream: SlowUpstream, redis_proc: RedisProcess) -> None:
    cfg = _cfg(upstream, redis_proc.url, teams={"ml": {"max_concurrent": 3}})
    cfg["auth"]["keys"][2]["limits"] = {"token_budget": 100, "budget_period": "day"}
    g1, g2 = start_gateway(cfg), start_gateway(cfg)
    try:
        upstream.latency_s = 1.0
        codes = asyncio.run(_blast([g1.url, g2.url], KEY_A, 12, 12))
        assert upstream.peak == 3, upstream.peak  # alice+bob's team: 3 at once over both
        assert codes.count(429) >= 6 and set(codes) <= {200, 429}
        upstream.latency_s = 0
        # Leases were released through Redis: the team can run again.
        assert asyncio.run(_blast([g1.url, g2.url], KEY_B, 3, 1)) == [200] * 3
        # Budget: 12 tokens charged per request after reconciliation, alternate gateways.
        codes = []
        for i in range(10):
            r = httpx.post(
                (g1, g2)[i % 2].url + "/v1/chat/completions",
                headers=auth(KEY_C),
                json={"model": "chat", "messages": MSG, "max_tokens": 1},
            )
            codes.append(r.status_code)
            time.sleep(0.05)  # the release runs just after the response
        est = (
            1
            + len(b'{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1}')
            // 4
        )
        want = max(n for n in range(1, 10) if 12 * (n - 1) + est <= 100)
        assert codes.count(200) == want, codes
    finally:
        g1.stop()
        g2.stop()


def _timed_post(url: str, key: str) -> tuple[int, float, str]:
    t0 = time.monotonic()
    r = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "chat", "messages": MSG},
        headers=auth(key),
        timeout=30,
    )
    return r.status_code, time.monotonic() - t0, r.text


@pytest.mark.parametrize("policy", ["open", "closed", "local"])
def test_redis_killed_and_restarted(upstream: SlowUpstream, policy: str) -> None:
    redis = RedisProcess().start()
    cfg = _cfg(upstream, redis.url, failure_policy=policy, default={"requests_per_minute": 5})
    gw = start_gateway(cfg)
    try:
        assert [_timed_post(gw.url, KEY_C)[0] for _ in range(6)] == [200] * 5 + [429]
        redis.kill()
        results = [_timed_post(gw.url, KEY_A) for _ in range(8)]
        codes = [c for c, _, _ in results]
        slowest = max(t for _, t, _ in results)
        print(f"\npolicy {policy}, Redis down: {codes}, slowest {slowest * 1000:.0f} ms")
        assert slowest < 2.0  # never a hang: socket timeouts of 0.25 s, then the breaker
        if policy == "open":
            assert codes == [200] * 8
        elif policy == "closed":
            assert codes == [503] * 8
            assert "rate_limiter_unavailable" in results[0][2]
            assert httpx.get(gw.url + "/readyz").status_code == 503
        else:  # local counters: alice's 5 per minute hold on this replica
            assert codes == [200] * 5 + [429] * 3
        redis = RedisProcess(redis.port).start()  # same address, empty
        time.sleep(0.6)  # the breaker's retry interval
        codes = [_timed_post(gw.url, KEY_B)[0] for _ in range(6)]
        assert codes == [200] * 5 + [429]
        assert gw.metric_value("llmops_ratelimit_store_errors_total") >= 1
    finally:
        gw.stop()
        redis.kill()


def test_redis_frozen_never_hangs(upstream: SlowUpstream) -> None:
    """SIGSTOP: the port accepts but nothing answers, the worst case for a client."""
    redis = RedisProcess().start()
    cfg = _cfg(upstream, redis.url, failure_policy="open", default={"requests_per_minute": 100})
    gw: GatewayServer = start_gateway(cfg)
    try:
        assert _timed_post(gw.url, KEY_C)[0] == 200
        os.kill(redis.pid, signal.SIGSTOP)
        results = [_timed_post(gw.url, KEY_C) for _ in range(10)]
        assert [c for c, _, _ in results] == [200] * 10
        assert max(t for _, t, _ in results) < 2.0
        os.kill(redis.pid, signal.SIGCONT)
        time.sleep(0.6)
        assert _timed_post(gw.url, KEY_C)[0] == 200
    finally:
        os.kill(redis.pid, signal.SIGCONT)
        gw.stop()
        redis.kill()


def test_hash_key_only_digests_in_redis(upstream: SlowUpstream, redis_proc: RedisProcess) -> None:
    import redis as redis_sync

    cfg = _cfg(upstream, redis_proc.url, default={"requests_per_minute": 10, "max_concurrent": 2})
    gw = start_gateway(cfg)
    try:
        assert _timed_post(gw.url, KEY_C)[0] == 200
        names = [
            k.decode() if isinstance(k, bytes) else k
            for k in redis_sync.Redis.from_url(redis_proc.url).keys("*")
        ]
        assert names and not any(KEY_C in n or hash_key(KEY_C) in n for n in names)
    finally:
        gw.stop()
