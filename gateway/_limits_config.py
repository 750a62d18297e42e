"""Limit, quota and load-shedding settings (the ``limits`` section of the gateway config).

Kept free of other gateway imports so ``gateway._config`` can embed these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


BudgetPeriod = Literal["minute", "hour", "day", "week", "month"]


class LimitSpec(_Strict):
    """Limits for one key or one team; a missing field means no limit on that dimension.

    Rates are token buckets (full at start, refilled continuously, as OpenAI's limits are);
    the budget is a fixed calendar window in UTC.
    """

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    token_budget: int | None = Field(None, ge=1, description="Tokens per budget_period.")
    budget_usd: float | None = Field(None, gt=0, description="USD per budget_period.")
    budget_period: BudgetPeriod = "day"

    @model_validator(mode="after")
    def _money_needs_a_period(self) -> LimitSpec:
        # A token budget has long defaulted to a day; money is never assumed to.
        if self.budget_usd is not None and "budget_period" not in self.model_fields_set:
            raise ValueError("budget_usd needs budget_period (minute, hour, day, week or month)")
        return self

    def is_empty(self) -> bool:
        return (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.max_concurrent is None
            and self.token_budget is None
            and self.budget_usd is None
        )


class RedisLimitsConfig(_Strict):
    """Shared counters for several gateway replicas; every call is bounded by short timeouts."""

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "llmops:rl:"
    socket_timeout_s: float = Field(0.25, gt=0, le=10)
    connect_timeout_s: float = Field(0.25, gt=0, le=10)
    max_connections: int = Field(64, ge=1)
    # After a failure, Redis is not asked again for this long (the policy answers instead).
    retry_interval_s: float = Field(1.0, ge=0)


class ModelShedding(_Strict):
    replica_capacity: int | None = Field(None, ge=0)
    queue_size: int | None = Field(None, ge=0)


class SheddingConfig(_Strict):
    """Admission control per model: at most ``replica_capacity`` requests in flight per healthy
    replica; the next ``queue_size`` wait (up to ``queue_timeout_s``); the rest get 503."""

    enabled: bool = False
    replica_capacity: int = Field(64, ge=1, description="In-flight requests one replica takes.")
    queue_size: int = Field(64, ge=0, description="Waiting requests per model; 0 = none wait.")
    queue_timeout_s: float = Field(10.0, gt=0)
    retry_after_s: int = Field(1, ge=1)
    # vLLM's queue: a replica whose vllm:num_requests_waiting exceeds this takes nothing new.
    # 0 turns scraping off.
    max_waiting: int = Field(0, ge=0)
    scrape_interval_s: float = Field(2.0, gt=0)
    scrape_timeout_s: float = Field(1.0, gt=0)
    models: dict[str, ModelShedding] = Field(default_factory=dict)


class LimitsConfig(_Strict):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    redis: RedisLimitsConfig = Field(default_factory=RedisLimitsConfig)
    # What Redis being unreachable means: "open" admits (unlimited), "closed" refuses with
    # 503, "local" falls back to this replica's in-memory counters.
    failure_policy: Literal["open", "closed", "local"] = "open"
    default: LimitSpec | None = Field(None, description="For keys without their own limits.")
    teams: dict[str, LimitSpec] = Field(default_factory=dict)
    # Token estimate reserved at admission: request body bytes / chars_per_token plus
    # max_tokens (or default_completion_tokens); reconciled from the response's usage.
    chars_per_token: float = Field(4.0, gt=0)
    default_completion_tokens: int = Field(256, ge=0)
    # Concurrency slots expire after this long even if a gateway dies holding them.
    concurrency_lease_s: float = Field(900.0, gt=0)
    shedding: SheddingConfig = Field(default_factory=SheddingConfig)
