"""The optional parts of the gateway, switched on by the config sections they need."""

from __future__ import annotations

from gateway.app import Plugin
from gateway.config import GatewayConfig


def default_plugins(config: GatewayConfig) -> list[Plugin]:
    plugins: list[Plugin] = []
    return plugins
