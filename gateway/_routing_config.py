"""How a model's replicas are chosen (``routing`` on a model). Free of other gateway imports
so ``gateway._config`` can embed it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["least_outstanding", "round_robin", "random", "prefix"]


class RoutingConfig(BaseModel):
    """``routing: prefix`` is shorthand for ``routing: {strategy: prefix}``.

    The prefix settings say how the prompt is cut into blocks and how a matched prefix is
    weighed against load (see docs/routing.md)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = "least_outstanding"
    block_chars: int = Field(512, ge=16, le=65536, description="Prompt characters per block.")
    max_blocks_per_replica: int | None = Field(
        None, ge=1, le=1 << 20,
        description="Blocks remembered per replica; null = from vLLM's KV capacity, else 16384.",
    )  # fmt: skip
    load_weight: float = Field(
        1.0, ge=0, description="Matched share given up per request of extra load, x gap + 1."
    )
    max_load_gap: int = Field(
        4, ge=0, description="A replica is chosen for its prefix only within this many requests "
        "of the least loaded one.",
    )  # fmt: skip
    scrape_interval_s: float = Field(1.0, gt=0, le=60, description="vLLM /metrics poll period.")
    scrape_timeout_s: float = Field(2.0, gt=0, le=30, description="A busy engine answers late.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"strategy": data} if isinstance(data, str) else data
