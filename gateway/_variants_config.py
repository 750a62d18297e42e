"""Model variant settings: weighted variants behind one alias, and the guard that rolls back.

Kept free of other gateway imports so ``gateway._config`` can embed these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantConfig(_Strict):
    """One model served under an alias, with its share of the alias's traffic."""

    model: str = Field(min_length=1, description="A model entry (name or alias) of this config.")
    weight: float = Field(ge=0, le=100, description="Relative share; 0 takes no new traffic.")


class GuardConfig(_Strict):
    """The online guard: a variant that does worse than the baseline variant over the last
    ``window_s`` is set to weight 0 by the gateway itself, with the reason logged and exported.

    It judges only with at least ``min_requests`` requests of each variant in the window, so a
    quiet hour cannot roll anything back on three unlucky requests.
    """

    enabled: bool = True
    window_s: float = Field(60.0, gt=0, le=86400)
    check_interval_s: float | None = Field(
        None, gt=0, description="How often the guard looks; null = window_s / 6."
    )
    min_requests: int = Field(20, ge=1)
    max_error_rate_increase: float = Field(
        0.05, ge=0, le=1, description="Allowed error-rate excess over the baseline (absolute)."
    )
    max_p95_latency_ratio: float = Field(
        1.5, gt=1, description="Allowed p95 latency of a variant over the baseline's."
    )
    min_p95_latency_increase_s: float = Field(
        0.05, ge=0, description="A latency breach also needs the p95 this much above the "
        "baseline's: a few milliseconds of scheduling noise are no regression.",
    )  # fmt: skip

    @property
    def interval_s(self) -> float:
        return self.check_interval_s or self.window_s / 6


class VariantsConfig(_Strict):
    """Where variant weights, guard state and per-request records are kept.

    ``state: auto`` uses Redis (the limits' connection settings) when ``limits.backend`` is
    redis, else a JSON file; either way a rollback survives a restart.
    """

    state: Literal["auto", "file", "redis"] = "auto"
    state_file: str | None = Field(
        None, description="JSON state file; null = $LLMOPS_HOME/gateway/variant-state.json."
    )
    events_file: str | None = Field(
        None, description="Per-request records for `llmops ab report`; null = under the home."
    )
    record_events: bool = True
    sync_interval_s: float = Field(1.0, gt=0, description="Redis: how often replicas sync.")
    write_back: bool = Field(
        True, description="Write weight changes into the config file the gateway was started from."
    )
