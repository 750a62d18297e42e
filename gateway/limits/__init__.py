"""Rate limits, quotas and load shedding for the gateway (see docs/reliability.md).

The config models live beside the gateway's own (``gateway/_limits_config.py``), so the config
never imports the feature and the feature imports the config freely.
"""

from gateway._limits_config import LimitsConfig, LimitSpec, RedisLimitsConfig, SheddingConfig
from gateway.limits._edge import install_cors as edge_plugin
from gateway.limits._plugin import install as limits_plugin

__all__ = [
    "LimitSpec",
    "LimitsConfig",
    "RedisLimitsConfig",
    "SheddingConfig",
    "edge_plugin",
    "limits_plugin",
]
