"""A bounded soak above capacity: the gateway sheds the excess, admitted requests stay fast,
and its memory stays flat. ``LLMOPS_SOAK_S`` sets the length (default 60 s)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.conftest import KEY_C, MSG, auth, config_dict
from tests.reliability.fakes import GatewayProcess, ReplicaProcess

SOAK_S = float(os.environ.get("LLMOPS_SOAK_S", "60"))
RATE = 40.0  # offered requests/s; capacity is 2 replicas x 2 slots / 0.2 s = 20/s


async def _open_loop(
    url: str, seconds: float, rate: float, gw: GatewayProcess, rss: list[tuple[float, int]]
) -> list[tuple[int, float]]:
    results: list[tuple[int, float]] = []
    body = {"model": "chat", "messages": MSG}
    conn = aiohttp.TCPConnector(limit=400)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one() -> None:
            t0 = time.perf_counter()
            try:
                async with s.post(
                    url + "/v1/chat/completions",
                    json=body,
                    headers=auth(KEY_C),
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as r:
                    await r.read()
                    results.append((r.status, time.perf_counter() - t0))
            except (aiohttp.ClientError, TimeoutError):
                results.append((0, time.perf_counter() - t0))

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        next_rss = 0.0
        i = 0
        while (now := time.perf_counter() - start) < seconds:
            if now >= next_rss:
                rss.append((now, gw.rss_kib()))
                next_rss += 5.0
            due = int(now * rate) - i
            for _ in range(due):
                t = asyncio.create_task(one())
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            i += max(due, 0)
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        rss.append((time.perf_counter() - start, gw.rss_kib()))
    return results


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_soak_above_capacity(tmp_path: Path) -> None:
    reps = [ReplicaProcess(n, latency_s=0.2).start() for n in ("a", "b")]
    cfg = config_dict(
        [r.url for r in reps],
        limits={
            "default": {"requests_per_minute": 1_000_000, "max_concurrent": 1000},
            "shedding": {
                "enabled": True,
                "replica_capacity": 2,
                "queue_size": 4,
                "queue_timeout_s": 0.5,
            },
        },
    )
    gw = GatewayProcess(cfg, tmp_path).start()
    try:
        rss: list[tuple[float, int]] = []
        results = asyncio.run(_open_loop(gw.url, SOAK_S, RATE, gw, rss))
        codes = Counter(c for c, _ in results)
        ok = sorted(t for c, t in results if c == 200)
        shed = codes[503] / len(results)
        p50 = statistics.median(ok) * 1000
        p99 = ok[int(len(ok) * 0.99) - 1] * 1000
        print(
            f"\nsoak {SOAK_S:.0f}s at {RATE:.0f}/s offered: {len(results)} requests, "
            f"codes {dict(codes)}, shed {shed:.1%}, admitted p50 {p50:.0f} ms "
            f"p99 {p99:.0f} ms, served {len(ok) / SOAK_S:.1f}/s"
        )
        print("gateway RSS MiB over time: " + ", ".join(f"{t:.0f}s={k / 1024:.1f}" for t, k in rss))
        assert set(codes) <= {200, 503}, codes
        assert shed > 0.05 and len(ok) > 0
        # Flat memory: from the first third of the run to the end, at most +16 MiB.
        base = max(k for t, k in rss if t <= SOAK_S / 3)
        assert rss[-1][1] - base < 16 * 1024, rss
    finally:
        gw.terminate()
        for r in reps:
            r.kill()
