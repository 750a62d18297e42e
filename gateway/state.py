"""Everything the request path reads, built once from the config at start-up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp

from gateway.config import GatewayConfig
from gateway.errors import GatewayError
from gateway.keys import KeyStore
from gateway.metrics import GatewayMetrics
from gateway.replicas import ModelPool, Replica
from gateway.routing import LeastOutstanding, RoutingStrategy


@dataclass(eq=False)
class GatewayState:
    config: GatewayConfig
    pools: dict[str, ModelPool]
    canonical: dict[str, str]
    keys: KeyStore
    metrics: GatewayMetrics
    strategy: RoutingStrategy = field(default_factory=LeastOutstanding)
    session: aiohttp.ClientSession = field(init=False)
    timeout: aiohttp.ClientTimeout = field(init=False)
    readiness_detail: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> GatewayState:
        pools: dict[str, ModelPool] = {}
        canonical: dict[str, str] = {}
        for m in config.models:
            replicas = [
                Replica(model=m.name, url=u.url, weight=u.weight, api_key=u.api_key)
                for u in m.upstreams
            ]
            pools[m.name] = ModelPool(m.name, m.upstream_name, m.kind, replicas)
            for n in (m.name, *m.aliases):
                canonical[n] = m.name
        metrics = GatewayMetrics()
        return cls(config, pools, canonical, KeyStore(config.auth, canonical), metrics)

    def open_session(self) -> None:
        """One client session for the process lifetime (created inside the running loop)."""
        srv = self.config.server
        self.timeout = aiohttp.ClientTimeout(
            total=srv.request_timeout_s, connect=srv.connect_timeout_s
        )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=srv.max_connections_per_replica, ttl_dns_cache=300
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    def pool_for(self, name: str) -> ModelPool:
        canonical = self.canonical.get(name)
        if canonical is None:
            raise GatewayError(
                404,
                f"The model '{name}' does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return self.pools[canonical]

    def replica_failed(self, replica: Replica, reason: str) -> None:
        self.metrics.upstream_error(replica.model, replica.url, reason)
        if replica.record_failure(self.config.health, time.monotonic()):
            self.metrics.set_healthy(replica.model, replica.url, False)

    def add_replica(self, model: str, url: str, weight: float = 1.0) -> Replica:
        replica = Replica(model=model, url=url.rstrip("/"), weight=weight)
        self.pools[model].replicas.append(replica)
        return replica
