"""Everything the request path reads, built once from the config at start-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from common import server_root
from gateway._config import GatewayConfig
from gateway._errors import GatewayError
from gateway._keys import KeyStore
from gateway._metrics import GatewayMetrics
from gateway._prefix_routing import PrefixAware, PrefixRoutingCollector
from gateway._replicas import ModelPool, Replica
from gateway._routing import RoutingStrategy
from gateway._routing_config import RoutingConfig
from gateway._strategies import make_strategy


@dataclass(eq=False)
class GatewayState:
    config: GatewayConfig
    pools: dict[str, ModelPool]
    canonical: dict[str, str]
    keys: KeyStore
    metrics: GatewayMetrics
    # One strategy per pool, from its model's ``routing`` (kept across reloads while the
    # setting stays, so the prefix strategy keeps what it learned).
    strategies: dict[str, tuple[RoutingConfig, RoutingStrategy]] = field(default_factory=dict)
    session: aiohttp.ClientSession = field(init=False)
    timeout: aiohttp.ClientTimeout = field(init=False)
    # Called with the new config after ``apply_config`` (limits, shedding... re-read theirs).
    reload_hooks: list[Callable[[GatewayConfig], None]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> GatewayState:
        pools: dict[str, ModelPool] = {}
        canonical: dict[str, str] = {}
        for m in config.models:
            for n in (m.name, *m.aliases):
                canonical[n] = m.name
            if m.variants is not None:
                continue  # served by its variants' pools (gateway.variants)
            replicas = [
                Replica(model=m.name, url=u.url, weight=u.weight, api_key=u.api_key)
                for u in m.upstreams
            ]
            pools[m.name] = ModelPool(
                m.name, m.upstream_name, m.kind, replicas, local=m.embedder is not None,
                cold_start_s=m.cold_start_timeout_s,
            )  # fmt: skip
        metrics = GatewayMetrics()
        state = cls(config, pools, canonical, KeyStore(config.auth, canonical), metrics)
        state._routing_from(config)
        metrics.registry.register(PrefixRoutingCollector(state.routing_strategies))
        return state

    def routing_strategies(self) -> list[tuple[str, RoutingStrategy]]:
        return [(name, s) for name, (_, s) in self.strategies.items()]

    def _routing_from(self, config: GatewayConfig) -> None:
        old = self.strategies
        self.strategies = {}
        for m in config.models:
            if m.name not in self.pools:
                continue
            kept = old.get(m.name)
            if kept is not None and kept[0] == m.routing:
                self.strategies[m.name] = kept
            else:
                self.strategies[m.name] = (m.routing, make_strategy(m.routing))
            strategy = self.strategies[m.name][1]
            if isinstance(strategy, PrefixAware):
                strategy.forget(self.pools[m.name].replicas)

    def strategy_for(self, model: str) -> RoutingStrategy:
        return self.strategies[model][1]

    def prefix_routed(self) -> list[Replica]:
        """Replicas whose model routes by prefix: the engine-stats poller watches these."""
        return [
            r for name, (_, s) in self.strategies.items() if isinstance(s, PrefixAware)
            for r in self.pools[name].replicas
        ]  # fmt: skip

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

    def canonical_name(self, name: str) -> str:
        """The configured model a client's name means (a pool, or an alias with variants)."""
        canonical = self.canonical.get(name)
        if canonical is None:
            raise GatewayError(
                404,
                f"The model '{name}' does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return canonical

    def pool_for(self, name: str) -> ModelPool:
        canonical = self.canonical_name(name)
        pool = self.pools.get(canonical)
        if pool is None:
            raise GatewayError(
                400,
                f"The model '{name}' is served by variants, which this route does not route.",
                code="model_not_supported",
                param="model",
            )
        return pool

    def replica_failed(self, replica: Replica, reason: str, *, eject: bool = True) -> None:
        self.metrics.upstream_error(replica.model, replica.url, reason)
        if eject and replica.record_failure(self.config.health, time.monotonic()):
            self.metrics.set_healthy(replica.model, replica.url, False)

    def add_replica(self, model: str, url: str, weight: float = 1.0) -> Replica:
        replica = Replica(model=model, url=server_root(url), weight=weight)
        self.pools[model].replicas.append(replica)
        return replica

    def apply_config(self, new: GatewayConfig) -> dict[str, list[str]]:
        """Take keys, limits and replica lists from a re-read config without a restart.

        Replicas that stay keep their counters and health; models are added or removed;
        server settings (ports, timeouts) and engines need a restart. Returns what changed.
        """
        changes: dict[str, list[str]] = {"added": [], "removed": [], "restart_needed": []}
        if new.server != self.config.server:
            changes["restart_needed"].append("server")
        canonical: dict[str, str] = {}
        pools: dict[str, ModelPool] = {}
        for m in new.models:
            old = self.pools.get(m.name)
            if m.variants is not None:
                for n in (m.name, *m.aliases):
                    canonical[n] = m.name
                continue
            if m.engine is not None and not m.upstreams:
                if old is None:
                    changes["restart_needed"].append(f"model {m.name} (engine)")
                    continue
                pools[m.name] = old  # a local engine's replicas stay as they are
                old.cold_start_s = m.cold_start_timeout_s
            else:
                by_url = {r.url: r for r in old.replicas} if old is not None else {}
                replicas = []
                for u in m.upstreams:
                    r = by_url.get(u.url)
                    if r is None:
                        r = Replica(model=m.name, url=u.url, weight=u.weight, api_key=u.api_key)
                        if old is not None:
                            changes["added"].append(f"{m.name} {u.url}")
                    else:
                        r.weight, r.api_key = u.weight, u.api_key
                    replicas.append(r)
                for url in by_url.keys() - {u.url for u in m.upstreams}:
                    changes["removed"].append(f"{m.name} {url}")
                if old is None:
                    pools[m.name] = ModelPool(
                        m.name, m.upstream_name, m.kind, replicas, local=m.embedder is not None,
                        cold_start_s=m.cold_start_timeout_s,
                    )  # fmt: skip
                else:
                    old.upstream_name, old.kind, old.replicas = m.upstream_name, m.kind, replicas
                    old.cold_start_s = m.cold_start_timeout_s
                    pools[m.name] = old
            for n in (m.name, *m.aliases):
                canonical[n] = m.name
        for name in self.pools.keys() - pools.keys():
            changes["removed"].append(name)
        for name in pools.keys() - self.pools.keys():
            changes["added"].append(name)
        self.pools, self.canonical = pools, canonical
        self._routing_from(new)
        self.keys.load(new.auth, canonical)
        new._source = self.config._source
        self.config = new
        for hook in self.reload_hooks:
            hook(new)
        return changes
