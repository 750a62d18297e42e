"""Variant configs that cannot work are config errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway import GatewayConfig, load_config


def _cfg(chat: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> GatewayConfig:
    models = [
        {"name": "v1", "upstreams": [{"url": "http://127.0.0.1:1"}]},
        {"name": "v2", "aliases": ["v2-alias"], "upstreams": [{"url": "http://127.0.0.1:2"}]},
        {"name": "emb", "kind": "embedding", "upstreams": [{"url": "http://127.0.0.1:3"}]},
        {"name": "chat", **chat},
        *(extra or []),
    ]
    return GatewayConfig(models=models)


def test_a_valid_alias_with_variants() -> None:
    cfg = _cfg({"variants": [{"model": "v1", "weight": 95}, {"model": "v2", "weight": 5}]})
    chat = cfg.models[3]
    assert chat.baseline_variant == "v1"
    assert [v.weight for v in chat.variants or ()] == [95, 5]


@pytest.mark.parametrize(
    ("chat", "message"),
    [
        ({"variants": [{"model": "v1", "weight": 0}, {"model": "v2", "weight": 0}]},
         "weights sum to 0"),
        ({"variants": [{"model": "nope", "weight": 1}]}, "variant 'nope' is not a model"),
        ({"variants": [{"model": "v1", "weight": -1}]}, "greater than or equal to 0"),
        ({"variants": [{"model": "v1", "weight": 101}]}, "less than or equal to 100"),
        ({"variants": [{"model": "v1", "weight": 1}, {"model": "v1", "weight": 1}]},
         "listed twice"),
        ({"variants": [{"model": "v1", "weight": 1}], "baseline": "v2"},
         "baseline 'v2' is not one of its variants"),
        ({"variants": [{"model": "v1", "weight": 1}],
          "upstreams": [{"url": "http://127.0.0.1:9"}]}, "takes no 'upstreams'"),
        ({"variants": [{"model": "emb", "weight": 1}]}, "is a embedding model"),
        ({"upstreams": [{"url": "http://127.0.0.1:9"}], "guard": {}}, "need 'variants'"),
        ({"variants": [{"model": "v1"}]}, "weight"),
    ],
)  # fmt: skip
def test_bad_variant_configs_are_errors_naming_the_field(
    chat: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as e:
        _cfg(chat)
    assert message in str(e.value)


def test_a_variant_may_not_have_variants_itself() -> None:
    with pytest.raises(ValidationError, match="has variants itself"):
        _cfg(
            {"variants": [{"model": "v1", "weight": 1}]},
            [{"name": "outer", "variants": [{"model": "chat", "weight": 1}]}],
        )


def test_a_variant_may_name_a_model_by_its_alias() -> None:
    cfg = _cfg({"variants": [{"model": "v1", "weight": 1}, {"model": "v2-alias", "weight": 1}]})
    assert cfg.models[3].variants is not None


@pytest.mark.parametrize("name", ["gateway.yaml", "gateway.example.yaml", "gateway.canary.yaml"])
def test_the_shipped_configs_load(name: str) -> None:
    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / name)
    if name == "gateway.canary.yaml":  # two local engines behind `chat`, split 50/50
        chat = next(m for m in cfg.models if m.name == "chat")
        assert [(v.model, v.weight) for v in chat.variants or ()] == [
            ("smollm2-v1", 50), ("smollm2-v2", 50)]  # fmt: skip
        engines = [m for m in cfg.models if m.engine is not None]
        assert {m.name for m in engines} == {"smollm2-v1", "smollm2-v2"}
