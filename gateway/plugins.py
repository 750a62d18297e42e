"""The optional parts of the gateway, switched on by the config sections they need."""

from __future__ import annotations

from gateway.app import Plugin
from gateway.config import GatewayConfig


def default_plugins(config: GatewayConfig) -> list[Plugin]:
    plugins: list[Plugin] = []
    retrieve = None
    if config.prompts is not None and config.prompts.enabled:
        from gateway.prompt_resolution import prompt_plugin, reloader_from_config

        plugins.append(prompt_plugin(reloader_from_config(config.prompts), retrieve=retrieve))
    if config.observability.active:
        from gateway.observability import observability_plugin

        plugins.append(observability_plugin)
    return plugins
