"""The optional parts of the gateway, switched on by the config sections they need."""

from __future__ import annotations

from typing import Any

from gateway._app import Plugin
from gateway._config import GatewayConfig


def default_plugins(config: GatewayConfig) -> list[Plugin]:
    from gateway._admin import admin_plugin
    from gateway._retrieval_plugin import local_embeddings_plugin, retrieval_plugin
    from gateway.limits import edge_plugin, limits_plugin

    plugins: list[Plugin] = [edge_plugin, local_embeddings_plugin]  # edge: no-op without CORS
    retrieve: Any = None
    if config.retrieval is not None:
        plugin, retrieve = retrieval_plugin(config)
        plugins.append(plugin)
    if config.prompts is not None and config.prompts.enabled:
        from gateway._prompt_resolution import prompt_plugin, reloader_from_config

        plugins.append(prompt_plugin(reloader_from_config(config.prompts), retrieve=retrieve))
    if config.observability.active:
        from gateway._observability import observability_plugin

        plugins.append(observability_plugin)
    if config.spend.enabled and config.pricing():
        from gateway.spend import spend_plugin

        # Before the limits: money budgets read the estimate and the charge it makes.
        plugins.append(spend_plugin)
    if config.limits.enabled:
        plugins.append(limits_plugin)
    plugins.append(admin_plugin)  # answers 404 unless auth.admin_sha256 is set
    return plugins
