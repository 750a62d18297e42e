"""Prices, costs and money budgets that cannot work are config errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway import GatewayConfig

UP = [{"url": "http://127.0.0.1:1"}]


def _cfg(**over: Any) -> GatewayConfig:
    models = over.pop("models", None) or [
        {"name": "m", "upstreams": UP},
        {"name": "emb", "kind": "embedding", "embedder": {}},
        {"name": "chat", "variants": [{"model": "m", "weight": 1}]},
    ]
    return GatewayConfig(models=models, **over)


def test_prices_from_the_entry_and_the_table() -> None:
    cfg = _cfg(
        models=[
            {"name": "a", "upstreams": UP, "price": {"input_per_1m": 0.15, "output_per_1m": 0.6}},
            {"name": "b", "upstreams": UP, "cost": {"usd_per_hour": 4.2}},
            {"name": "c", "upstreams": UP},
            {"name": "d", "upstreams": UP},
        ],
        spend={"prices": {"c": {"input_per_1m": 1, "output_per_1m": 2}}},
    )
    pricing = cfg.pricing()
    assert set(pricing) == {"a", "b", "c"}
    assert pricing["b"].prefill_weight == 0.1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"models": [{"name": "m", "upstreams": UP,
                      "price": {"input_per_1m": -1, "output_per_1m": 1}}]},
         "models.0.price.input_per_1m"),
        ({"models": [{"name": "m", "upstreams": UP, "price": {"input_per_1m": 1}}]},
         "models.0.price.output_per_1m"),
        ({"models": [{"name": "m", "upstreams": UP, "cost": {"usd_per_hour": 0}}]},
         "models.0.cost.usd_per_hour"),
        ({"models": [{"name": "m", "upstreams": UP, "cost": {}}]}, "models.0.cost.usd_per_hour"),
        ({"models": [{"name": "m", "upstreams": UP, "cost": {"usd_per_hour": 1},
                      "price": {"input_per_1m": 1, "output_per_1m": 1}}]}, "not both"),
        ({"models": [{"name": "e", "kind": "embedding", "embedder": {},
                      "cost": {"usd_per_hour": 1}}]}, "'cost' is per replica"),
        ({"models": [{"name": "m", "upstreams": UP},
                     {"name": "chat", "variants": [{"model": "m", "weight": 1}],
                      "price": {"input_per_1m": 1, "output_per_1m": 1}}]},
         "priced by its variants"),
        ({"spend": {"prices": {"nope": {"input_per_1m": 1, "output_per_1m": 1}}}},
         "spend.prices.nope: 'nope' is not a model name"),
        ({"spend": {"prices": {"chat": {"input_per_1m": 1, "output_per_1m": 1}}}},
         "spend.prices.chat: 'chat' is an alias with variants"),
        ({"spend": {"prices": {"m": {"input_per_1m": 1, "output_per_1m": -2}}}},
         "spend.prices.m.output_per_1m"),
        ({"limits": {"default": {"budget_usd": 10}}}, "budget_usd needs budget_period"),
        ({"limits": {"teams": {"ml": {"budget_usd": -1, "budget_period": "day"}}}},
         "limits.teams.ml.budget_usd"),
    ],
)  # fmt: skip
def test_bad_spend_configs_name_the_field(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as e:
        _cfg(**over)
    assert message in str(e.value), str(e.value)


def test_a_money_budget_with_its_period() -> None:
    cfg = _cfg(limits={"teams": {"ml": {"budget_usd": 50, "budget_period": "month"}}})
    assert cfg.limits.teams["ml"].budget_usd == 50
    assert not cfg.limits.teams["ml"].is_empty()
