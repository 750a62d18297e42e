"""OpenAI-compatible gateway in front of vLLM replicas."""

from gateway.app import GatewayApp, create_app
from gateway.config import GatewayConfig, ModelConfig, hash_key, load_config
from gateway.errors import GatewayError

__all__ = [
    "GatewayApp",
    "GatewayConfig",
    "GatewayError",
    "ModelConfig",
    "create_app",
    "hash_key",
    "load_config",
]
