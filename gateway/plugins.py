"""The optional parts of the gateway, switched on by the config sections they need."""

from __future__ import annotations

from gateway.app import Plugin
from gateway.config import GatewayConfig


def default_plugins(config: GatewayConfig) -> list[Plugin]:
    from gateway.admin import admin_plugin
    from gateway.limits import edge_plugin, limits_plugin

    plugins: list[Plugin] = [edge_plugin]  # first; a no-op unless server.cors.allow_origins
    retrieve = None
    if config.prompts is not None and config.prompts.enabled:
        from gateway.prompt_resolution import prompt_plugin, reloader_from_config

        plugins.append(prompt_plugin(reloader_from_config(config.prompts), retrieve=retrieve))
    if config.observability.active:
        from gateway.observability import observability_plugin

        plugins.append(observability_plugin)
    if config.limits.enabled:
        plugins.append(limits_plugin)
    plugins.append(admin_plugin)  # answers 404 unless auth.admin_sha256 is set
    return plugins
