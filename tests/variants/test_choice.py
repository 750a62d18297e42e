"""The split: sticky per key, by weight, and moving only onto a variant whose weight grows."""

from __future__ import annotations

import random

from gateway.variants import VariantGroup


def test_keyed_split_follows_the_weights_over_20000_users() -> None:
    g = VariantGroup("chat", ("v1", "v2", "v3"), [70, 25, 5], "v1")
    counts = {"v1": 0, "v2": 0, "v3": 0}
    for i in range(20_000):
        v = g.choose(f"user-{i}")
        assert v is not None
        counts[v] += 1
    for model, w in zip(g.models, g.weights, strict=True):
        assert abs(counts[model] / 20_000 - w / 100) <= 0.01, counts


def test_unkeyed_split_follows_the_weights() -> None:
    g = VariantGroup("chat", ("v1", "v2"), [95, 5], "v1")
    rng = random.Random(7)
    n = sum(g.choose(None, rng) == "v2" for _ in range(20_000))
    assert abs(n / 20_000 - 0.05) <= 0.01


def test_a_user_stays_on_the_variant_and_moves_only_onto_a_growing_one() -> None:
    g = VariantGroup("chat", ("v1", "v2", "v3"), [60, 20, 20], "v1")
    users = [f"u{i}" for i in range(3000)]
    before = {u: g.choose(u) for u in users}
    assert before == {u: g.choose(u) for u in users}  # sticky
    g.set_weights([60, 40, 20])
    after = {u: g.choose(u) for u in users}
    moved = [(before[u], after[u]) for u in users if before[u] != after[u]]
    assert moved, "raising v2 moves some users onto it"
    assert all(dst == "v2" for _, dst in moved)


def test_weight_zero_takes_nothing_and_all_zero_chooses_none() -> None:
    g = VariantGroup("chat", ("v1", "v2"), [100, 0], "v1")
    assert {g.choose(f"u{i}") for i in range(500)} == {"v1"}
    g.set_weights([0, 0])
    assert g.choose("u1") is None and g.choose(None) is None
