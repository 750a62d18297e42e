"""Prices and infrastructure costs (``price`` / ``cost`` on a model, the ``spend`` section).

Kept free of other gateway imports so ``gateway._config`` can embed these models.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenPrice(_Strict):
    """A list price: what a remote or priced upstream charges per million tokens."""

    input_per_1m: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output_per_1m: float = Field(ge=0, description="USD per 1M completion tokens.")


class InfraCost(_Strict):
    """What one replica of a self-hosted model costs to run, allocated to the tokens it serves.

    A request's cost is its weighted tokens (prompt tokens x ``prefill_weight`` + completion
    tokens) times the replica's cost per weighted token over the last ``window_s``: the
    replica's cost over the time it was busy in the window, divided by the weighted tokens
    it served then. Time with nothing in flight is idle and reported on its own.
    """

    usd_per_hour: float = Field(gt=0, description="One replica, e.g. 4.20 for one H100.")
    prefill_weight: float = Field(
        0.1, ge=0, description="A prompt token's cost relative to a generated token's."
    )


class SpendConfig(_Strict):
    enabled: bool = True
    prices: dict[str, TokenPrice] = Field(
        default_factory=dict, description="A price table: model name -> token price."
    )
    window_s: float = Field(300.0, gt=0, description="Cost-per-token window of infra-cost models.")
    flush_interval_s: float = Field(1.0, gt=0, description="How often the ledger is pushed.")
    retention_days: int = Field(90, ge=1, description="Hourly ledger buckets kept this long.")
