"""Local vLLM engines: spec, venv installer, model preparation and the process manager.

The gateway never imports vLLM: an engine is a subprocess started from its own virtualenv
(``$LLMOPS_HOME/engines/...``) and reached over HTTP.
"""

from engine._command import build_command, build_env
from engine._manager import EngineManager, EngineStartError
from engine._models import (
    DEFAULT_MODEL,
    ModelPrepareError,
    known_models,
    model_dir,
    prepare_model,
    resolve_model,
    verify_manifest,
)
from engine._spec import Backend, EngineSpec
from engine._venv import (
    EngineInstallError,
    engine_python,
    ensure_engine_venv,
    is_engine_venv_ready,
)

__all__ = [
    "DEFAULT_MODEL",
    "Backend",
    "EngineInstallError",
    "EngineManager",
    "EngineSpec",
    "EngineStartError",
    "ModelPrepareError",
    "build_command",
    "build_env",
    "engine_python",
    "ensure_engine_venv",
    "is_engine_venv_ready",
    "known_models",
    "model_dir",
    "prepare_model",
    "resolve_model",
    "verify_manifest",
]
