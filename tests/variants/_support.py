"""A gateway with two fake upstreams behind one alias (the engine tests use real engines)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway import hash_key, load_config
from tests.fakes.servers import GatewayServer

KEY = "sk-var-all"  # may use every model: may force a variant
ALIAS_ONLY_KEY = "sk-var-alias"  # may use the alias only
ADMIN = "sk-var-admin"
MSG = [{"role": "user", "content": "hi"}]


def config_dict(url_v1: str, url_v2: str, tmp: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "server": {"request_timeout_s": 10, "connect_timeout_s": 2},
        "auth": {
            "admin_sha256": hash_key(ADMIN),
            "keys": [
                {"name": "all", "sha256": hash_key(KEY)},
                {"name": "alias-only", "sha256": hash_key(ALIAS_ONLY_KEY), "models": ["chat"]},
            ],
        },
        "health": {"interval_s": 0.5, "failure_threshold": 1000},
        "models": [
            {"name": "v1", "served_name": "served-v1", "upstreams": [{"url": url_v1}]},
            {"name": "v2", "served_name": "served-v2", "upstreams": [{"url": url_v2}]},
            {
                "name": "chat",
                "variants": [{"model": "v1", "weight": 50}, {"model": "v2", "weight": 50}],
                "guard": {"window_s": 3, "check_interval_s": 0.25, "min_requests": 8},
            },
        ],
        "limits": {"enabled": False},
        "variants": {
            "state_file": str(tmp / "variant-state.json"),
            "events_file": str(tmp / "variant-events.jsonl"),
        },
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def write_config(path: Path, cfg: dict[str, Any], comment: str = "") -> Path:
    path.write_text(comment + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def start_gateway(path: Path) -> GatewayServer:
    return GatewayServer(load_config(path)).start()


def admin_status(gw: GatewayServer) -> dict[str, Any]:
    r = httpx.get(gw.url + "/admin/variants/chat", headers={"authorization": f"Bearer {ADMIN}"})
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def weight(gw: GatewayServer, model: str) -> float:
    return float(next(v["weight"] for v in admin_status(gw)["variants"] if v["model"] == model))


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Seconds until ``cond()`` held; raises after ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")
