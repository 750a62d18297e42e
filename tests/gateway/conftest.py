from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway import GatewayConfig, hash_key
from tests.fakes.openai_upstream import FakeUpstream, free_port
from tests.fakes.servers import GatewayServer

ADMIN_KEY = "sk-test-admin"
LIMITED_KEY = "sk-test-limited"


def make_config(
    chat_urls: list[str], embed_urls: list[str] | None = None, **over: Any
) -> GatewayConfig:
    cfg: dict[str, Any] = {
        "server": {"request_timeout_s": 30, "connect_timeout_s": 2, "max_body_bytes": 64 * 1024},
        "auth": {
            "enabled": True,
            "keys": [
                {"name": "admin", "sha256": hash_key(ADMIN_KEY)},
                {"name": "limited", "sha256": hash_key(LIMITED_KEY), "models": ["emb"]},
            ],
        },
        "health": {
            "interval_s": 0.2,
            "timeout_s": 1,
            "failure_threshold": 2,
            "backoff_initial_s": 0.5,
            "backoff_max_s": 2,
        },
        "models": [
            {
                "name": "chat",
                "served_name": "served-chat",
                "aliases": ["chat-alias"],
                "upstreams": [{"url": u} for u in chat_urls],
            },
            {
                "name": "emb",
                "kind": "embedding",
                "upstreams": [{"url": u} for u in (embed_urls or chat_urls)],
            },
        ],
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return GatewayConfig(**cfg)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    a = FakeUpstream(name="a").start()
    b = FakeUpstream(name="b").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def gateway(upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[GatewayServer]:
    a, b = upstreams
    gw = GatewayServer(make_config([a.url, b.url])).start()
    yield gw
    gw.stop()


@pytest.fixture()
def client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


@pytest.fixture()
def fresh_upstreams(
    upstreams: tuple[FakeUpstream, FakeUpstream],
) -> tuple[FakeUpstream, FakeUpstream]:
    for u in upstreams:
        u.mode = "ok"
        u.healthy = True
        u.requests.clear()
        u.headers_seen.clear()
    return upstreams


__all__ = ["ADMIN_KEY", "LIMITED_KEY", "free_port", "make_config"]
