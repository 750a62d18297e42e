"""Two gateways share one Redis: weights set on one apply on both, and the guard adds up both
gateways' requests, so a fault that neither sees enough of alone still rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway import GatewayConfig
from gateway.variants import VariantGroup
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.reliability.fakes import RedisProcess
from tests.variants._support import ADMIN, KEY, MSG, admin_status, config_dict, wait_for, weight

pytestmark = pytest.mark.redis


@pytest.fixture()
def pair(redis_proc: RedisProcess, tmp_path: Path) -> Iterator[tuple[GatewayServer, ...]]:
    a, b = FakeUpstream(name="v1").start(), FakeUpstream(name="v2").start()
    prefix = f"llmops:test:{tmp_path.name}:"  # a fresh namespace in the module's Redis
    cfg = config_dict(a.url, b.url, tmp_path, limits={"enabled": True, "backend": "redis",
                      "redis": {"url": redis_proc.url, "key_prefix": prefix}},
                      variants={"sync_interval_s": 0.1, "write_back": False})  # fmt: skip
    cfg["models"][2]["guard"] = {"window_s": 6, "check_interval_s": 0.2, "min_requests": 12}
    gws = tuple(GatewayServer(GatewayConfig(**cfg)).start() for _ in range(2))
    yield (*gws, b)  # type: ignore[misc]
    for g in gws:
        g.stop()
    a.stop()
    b.stop()


def _users_on(variant: str, n: int) -> list[str]:
    g = VariantGroup("chat", ("v1", "v2"), [50, 50], "v1")
    return [u for u in (f"user-{i}" for i in range(1000)) if g.choose(u) == variant][:n]


def test_weights_and_guard_counts_are_shared(pair: tuple[GatewayServer, ...]) -> None:
    g1, g2, v2 = pair
    import httpx

    r = httpx.put(g1.url + "/admin/variants/chat", json={"weights": {"v2": 30}},
                  headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
    assert r.status_code == 200
    wait_for(lambda: weight(g2, "v2") == 30, timeout=5)
    httpx.put(g1.url + "/admin/variants/chat", json={"weights": {"v2": 50}},
              headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
    wait_for(lambda: weight(g2, "v2") == 50, timeout=5)

    v2.mode = "error500"
    users = _users_on("v2", 14)
    for g, half in ((g1, users[:7]), (g2, users[7:])):
        c = openai.OpenAI(base_url=g.url + "/v1", api_key=KEY, max_retries=0)
        for u in half:
            with pytest.raises(openai.InternalServerError):
                c.chat.completions.create(model="chat", messages=MSG, user=u)
    # 7 failures each, under min_requests (12) alone: only the shared window sees 14.
    wait_for(lambda: weight(g1, "v2") == 0 and weight(g2, "v2") == 0, timeout=10)
    for g in (g1, g2):
        v = next(x for x in admin_status(g)["variants"] if x["model"] == "v2")
        assert v["rolled_back"]["reason"] == "error_rate"
