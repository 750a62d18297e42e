from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from gateway import GatewayConfig, hash_key
from gateway._admin import admin_plugin
from gateway.limits import edge_plugin, limits_plugin
from tests.fakes.servers import GatewayServer
from tests.reliability.fakes import RedisProcess, SlowUpstream

KEY_A = "sk-rel-alice"
KEY_B = "sk-rel-bob"
KEY_C = "sk-rel-carol"
ADMIN = "sk-rel-admin"
MSG = [{"role": "user", "content": "hi"}]

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server missing: bash scripts/system_deps.sh"
)


def config_dict(urls: list[str], **over: Any) -> dict[str, Any]:
    """A gateway config as plain data (written to YAML for process tests)."""
    cfg: dict[str, Any] = {
        "server": {
            "request_timeout_s": 30,
            "connect_timeout_s": 2,
            "first_byte_timeout_s": 5,
            "chunk_timeout_s": 5,
        },
        "auth": {
            "enabled": True,
            "admin_sha256": hash_key(ADMIN),
            "keys": [
                {"name": "alice", "sha256": hash_key(KEY_A), "team": "ml"},
                {"name": "bob", "sha256": hash_key(KEY_B), "team": "ml"},
                {"name": "carol", "sha256": hash_key(KEY_C)},
            ],
        },
        "health": {
            "interval_s": 0.3,
            "timeout_s": 1,
            "failure_threshold": 2,
            "backoff_initial_s": 0.5,
            "backoff_max_s": 2,
        },
        "models": [{"name": "chat", "upstreams": [{"url": u} for u in urls]}],
        "limits": {},
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def start_gateway(cfg: dict[str, Any]) -> GatewayServer:
    return GatewayServer(GatewayConfig(**cfg), [edge_plugin, limits_plugin, admin_plugin]).start()


@pytest.fixture()
def upstream() -> Iterator[SlowUpstream]:
    u = SlowUpstream(name="u").start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def redis_proc() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server missing: bash scripts/system_deps.sh")
    r = RedisProcess().start()
    yield r
    r.kill()


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
