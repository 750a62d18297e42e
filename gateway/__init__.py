"""The OpenAI-compatible HTTP data path in front of vLLM replicas.

Edge, request fields, resolution hooks (prompts, retrieval, observability), admission (keys,
limits, shedding), routing, upstream and accounting. Optional parts are plug-ins that the config
switches on (``default_plugins``); each hooks into :class:`GatewayApp`.
"""

from gateway._app import GatewayApp, Plugin, create_app
from gateway._config import GatewayConfig, ModelConfig, hash_key, load_config
from gateway._context import RequestContext
from gateway._errors import GatewayError
from gateway._plugins import default_plugins

__all__ = [
    "GatewayApp",
    "GatewayConfig",
    "GatewayError",
    "ModelConfig",
    "Plugin",
    "RequestContext",
    "create_app",
    "default_plugins",
    "hash_key",
    "load_config",
]
