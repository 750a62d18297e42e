from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway._app import GatewayApp
from gateway._observability import observability_plugin
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, make_config

__all__ = ["ADMIN_KEY"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    u = FakeUpstream(name="a").start()
    yield u
    u.stop()


def obs_config(tracing: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
    """An observability section whose Langfuse keys are unique per app (the SDK keeps one
    exporter per public key and process)."""
    tr: dict[str, Any] = {
        "enabled": True,
        "langfuse": {
            "public_key": f"pk-test-{uuid.uuid4().hex[:8]}",
            "secret_key": "sk-test",
            "base_url": "http://127.0.0.1:9",
            "flush_interval_s": 0.2,
        },
    }
    for k, v in (tracing or {}).items():
        tr[k] = {**tr[k], **v} if isinstance(v, dict) and isinstance(tr.get(k), dict) else v
    return {"tracing": tr, **over}


Extra = Callable[[GatewayApp], Any]


@pytest.fixture()
def start_gateway(
    upstream: FakeUpstream,
) -> Iterator[Callable[..., tuple[GatewayServer, InMemorySpanExporter | None]]]:
    """Start a real gateway with the observability plug-in; returns (server, exporter)."""
    servers: list[GatewayServer] = []

    def start(
        observability: dict[str, Any],
        *,
        in_memory: bool = True,
        extra: list[Extra] | None = None,
        embedder: Any = None,
        upstream_url: str | None = None,
    ) -> tuple[GatewayServer, InMemorySpanExporter | None]:
        exporter = InMemorySpanExporter() if in_memory else None

        def plugin(gw: GatewayApp) -> None:
            observability_plugin(gw, span_exporter=exporter, embedder=embedder)

        cfg = make_config([upstream_url or upstream.url], observability=observability)
        gw = GatewayServer(cfg, [plugin, *(extra or [])]).start()
        servers.append(gw)
        return gw, exporter

    yield start
    for s in servers:
        s.stop()


def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    return tmp_path
