"""One vLLM ``/metrics`` poller per gateway: prefix routing and load shedding both read each
replica's queue, and each replica is scraped once per interval however many consumers want it
(real HTTP against fake vLLM servers that count their scrapes; the fakes stand in for vLLM,
which reports its queue the same way)."""

from __future__ import annotations

import time

import httpx

from gateway import GatewayConfig
from gateway._admin import admin_plugin
from gateway._engine_stats import Poller, Want
from gateway._replicas import Replica
from gateway.limits import edge_plugin, limits_plugin
from tests.fakes.servers import GatewayServer
from tests.reliability.fakes import SlowUpstream

INTERVAL_S = 0.2
MSG = [{"role": "user", "content": "hi"}]


def test_merged_wants_scrape_each_replica_once_at_the_shortest_interval() -> None:
    a, b, c = (Replica(model="m", url=f"http://r{i}") for i in range(3))
    p = Poller()
    assert p.merged() is None  # nobody wants anything: the poller idles
    p.want("routing", lambda: Want([a, b], 1.0, 2.0))
    p.want("shedding", lambda: Want([b, c], 0.5, 3.0))
    p.want("off", lambda: None)
    w = p.merged()
    assert w is not None
    assert w.replicas == [a, b, c] and (w.interval_s, w.timeout_s) == (0.5, 2.0)

    def broken() -> Want | None:
        raise RuntimeError("a consumer's bug")

    p.want("shedding", broken)  # replaced; a failing consumer leaves the others served
    w = p.merged()
    assert w is not None and w.replicas == [a, b]


def test_routing_and_shedding_share_one_scrape_per_replica() -> None:
    ups = [SlowUpstream(name=f"u{i}").start() for i in range(2)]
    cfg = GatewayConfig(
        models=[{
            "name": "chat",
            "routing": {"strategy": "prefix", "scrape_interval_s": INTERVAL_S},
            "upstreams": [{"url": u.url} for u in ups],
        }],
        auth={"enabled": False},
        prompts=None,
        limits={"shedding": {"enabled": True, "replica_capacity": 4, "queue_size": 0,
                             "max_waiting": 4, "scrape_interval_s": INTERVAL_S}},
    )  # fmt: skip
    gw = GatewayServer(cfg, [edge_plugin, limits_plugin, admin_plugin]).start()
    try:
        before = [u.metrics_hits for u in ups]
        t0 = time.monotonic()
        time.sleep(2.0)
        elapsed = time.monotonic() - t0
        hits = [u.metrics_hits - b for u, b in zip(ups, before, strict=True)]
        # Two consumers, each at INTERVAL_S: one poller scrapes a replica once a round, so at
        # most elapsed / INTERVAL_S (+1 for a round in flight at each edge). Two pollers would
        # make about twice that.
        rounds = elapsed / INTERVAL_S
        assert all(1 <= h <= rounds + 2 for h in hits), (hits, rounds)
        # Both consumers read what that one scrape found: both replicas report a long queue,
        # so shedding takes nothing new.
        for u in ups:
            u.waiting = 10
        time.sleep(4 * INTERVAL_S)
        body = {"model": "chat", "messages": MSG}
        r = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_overloaded"
        for u in ups:
            u.waiting = 0
        time.sleep(4 * INTERVAL_S)
        r = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 200, r.text
    finally:
        gw.stop()
        for u in ups:
            u.stop()
