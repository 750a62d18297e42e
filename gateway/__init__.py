"""OpenAI-compatible gateway in front of vLLM replicas.

Names are imported lazily so that ``llmops models ...`` (``gateway.engine``) starts without
loading FastAPI and the rest of the serving stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.app import GatewayApp, create_app
    from gateway.config import GatewayConfig, ModelConfig, hash_key, load_config
    from gateway.errors import GatewayError

_EXPORTS = {
    "GatewayApp": "gateway.app",
    "create_app": "gateway.app",
    "GatewayConfig": "gateway.config",
    "ModelConfig": "gateway.config",
    "hash_key": "gateway.config",
    "load_config": "gateway.config",
    "GatewayError": "gateway.errors",
}

__all__ = [
    "GatewayApp",
    "GatewayConfig",
    "GatewayError",
    "ModelConfig",
    "create_app",
    "hash_key",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    return getattr(import_module(module), name)
