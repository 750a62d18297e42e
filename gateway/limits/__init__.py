"""Rate limits, quotas and load shedding for the gateway (see docs/reliability.md).

``limits_plugin`` installs them; the import is deferred so ``gateway.config`` can use the
config models here without a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.limits.config import LimitsConfig, LimitSpec, RedisLimitsConfig, SheddingConfig

if TYPE_CHECKING:
    from gateway.app import GatewayApp


def limits_plugin(gw: GatewayApp) -> Any:
    """Rate limits and quotas per key/team, plus load shedding, as admission hooks."""
    from gateway.limits.plugin import install

    return install(gw)


def edge_plugin(gw: GatewayApp) -> Any:
    """CORS (only when origins are configured)."""
    from gateway.limits.edge import install_cors

    return install_cors(gw)


__all__ = [
    "LimitSpec",
    "LimitsConfig",
    "RedisLimitsConfig",
    "SheddingConfig",
    "edge_plugin",
    "limits_plugin",
]
