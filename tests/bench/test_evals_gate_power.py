"""The resampling core of bench/evals_gate_power.py on synthetic scores (no engine, no model):
a no-op whose two sides have the same distribution fails about as often as the gate's nominal
bound allows, a regression of twice the allowance is caught nearly always, intervals cover the
true change about as often as their confidence says, and the table renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from bench import evals_gate_power as egp
from evals._stats import delta_sd, min_detectable
from evals._suite import parse_suite

N = 100
REPS = 300


def _pool(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base, no-op head, degraded head) per case. The second half of the cases is the first
    half with base and head swapped, so the two sides have one distribution and the pool's mean
    delta is exactly 0."""
    half = N // 2
    if kind == "continuous":
        difficulty = rng.uniform(0.3, 0.9, half)
        a = np.clip(difficulty + rng.normal(0, 0.08, half), 0, 1)
        b = np.clip(difficulty + rng.normal(0, 0.08, half), 0, 1)
    else:
        a = (rng.random(half) < 0.7).astype(float)
        b = np.where(rng.random(half) < 0.8, a, 1 - a)  # paired: mostly the same answer
    base = np.concatenate([a, b])
    head = np.concatenate([b, a])
    degraded = np.clip(base - 0.6, 0, 1) if kind == "continuous" else np.zeros(N)
    return base, head, degraded


def _suite(metric: dict[str, Any]) -> Any:
    text = yaml.safe_dump(
        {
            "name": "synthetic",
            "dataset": "data.jsonl",
            "seed": 11,
            "metrics": [metric],
            "gate": {"bootstrap_samples": 1000},  # half the default: a cheaper test
        }
    )
    return parse_suite(text, Path("synthetic.yaml"), "synthetic.yaml")


def _scores(values: np.ndarray, mid: str) -> dict[str, dict[str, float | None]]:
    return {f"c{i}": {mid: float(x)} for i, x in enumerate(values)}


@pytest.mark.parametrize(
    "kind,metric",
    [("continuous", {"type": "semantic_similarity"}), ("binary", {"type": "contains"})],
)
def test_noop_fails_near_the_nominal_bound_and_2x_is_caught(
    kind: str, metric: dict[str, Any]
) -> None:
    rng = np.random.default_rng(5)
    base, head, degraded = _pool(kind, rng)
    noop = head - base
    assert noop.mean() == pytest.approx(0.0, abs=1e-12)
    # The allowance at the 95%-power mde: the gate promises <= 5% false fails there.
    m = min_detectable(delta_sd(noop), N, confidence=0.95, power=0.95)
    suite = _suite({**metric, "max_regression": round(m, 4)})
    spec = suite.metrics[0]
    variants = {
        egp.SHIPPED: _scores(base, spec.id),
        "whitespace": _scores(head, spec.id),
        "truncated": _scores(degraded, spec.id),
    }
    noops = [egp.pool_deltas(suite, spec, variants[egp.SHIPPED], variants["whitespace"])]
    deg = egp.pool_deltas(suite, spec, variants[egp.SHIPPED], variants["truncated"])
    np.testing.assert_allclose(noops[0], noop)

    none = egp.replicate(
        suite, spec, noops, None, egp.Setup("noop", [0.0]), REPS, np.random.default_rng(1)
    )
    assert 0.0 < none.fail_rate <= 0.12, none
    assert abs(none.coverage - 0.95) <= 0.05, none

    gap = float(noops[0].mean() - deg.mean())
    planted = egp._setup_for("2x", 2 * spec.max_regression, gap, 1)
    assert not planted.capped
    assert planted.achieved_drop == pytest.approx(2 * spec.max_regression)
    caught = egp.replicate(suite, spec, noops, deg, planted, REPS, np.random.default_rng(2))
    assert caught.fail_rate >= 0.95, caught
    assert abs(caught.coverage - 0.95) <= 0.06, caught


def test_the_null_removes_a_rewordings_real_change_and_as_is_keeps_it() -> None:
    """A rewording that really lowers the metric by more than the allowance fails "as is"; with
    random signs (the false-fail setup) the same spread has mean change 0 and passes near the
    bound."""
    rng = np.random.default_rng(11)
    base, head, _ = _pool("continuous", rng)
    shifted = [head - base - 0.15]
    # The allowance at the 95%-power mde of the spread the null keeps (its signs are random).
    m = min_detectable(float(np.sqrt(np.mean(shifted[0] ** 2))), N, confidence=0.95, power=0.95)
    assert m < 0.15
    suite = _suite({"type": "semantic_similarity", "max_regression": round(m, 4)})
    spec = suite.metrics[0]
    as_is = egp.Setup("as_is", [0.0], null=False)
    null = egp.Setup("noop", [0.0])
    real = egp.replicate(suite, spec, shifted, None, as_is, REPS, np.random.default_rng(3))
    flipped = egp.replicate(suite, spec, shifted, None, null, REPS, np.random.default_rng(3))
    assert real.fail_rate >= 0.9, real
    assert flipped.fail_rate <= 0.12, flipped


def test_resample_suite_reports_every_setup_and_renders() -> None:
    rng = np.random.default_rng(9)
    base, head, degraded = _pool("continuous", rng)
    suite = _suite({"type": "semantic_similarity", "max_regression": 0.05})
    mid = suite.metrics[0].id
    variants = {
        egp.SHIPPED: _scores(base, mid),
        "whitespace": _scores(head, mid),
        "synonyms": _scores(head, mid),
        "truncated": _scores(degraded, mid),
        "verbose": _scores(np.clip(base + 0.1, 0, 1), mid),  # better, never the planted one
    }
    rows = egp.resample_suite(
        suite, variants, ["whitespace", "synonyms"], ["truncated", "verbose"], 20, 0, 500
    )
    (row,) = rows
    assert row["degraded"] == "truncated"
    assert {s["setup"] for s in row["setups"]} == {"noop", "as_is", "0.5x", "1x", "2x", "mde_95"}
    assert 0 < row["mde_80"] < row["mde_95"]
    assert set(row["checks"]) == {"false_fail", "coverage", "detection_1x"}
    text = egp.render_text(rows)
    assert "semantic_similarity" in text and "false fail" in text
    md = egp.render_markdown(rows).splitlines()
    assert md[0].startswith("| suite | metric |") and len(md) == 3


def test_variants_reword_only_the_instruction() -> None:
    shipped = (egp.ROOT / "prompts" / "rag-answer.yaml").read_text()
    data = yaml.safe_load(shipped)
    for name in egp.REWORDINGS:
        out = yaml.safe_load(egp.variant_text(shipped, name))
        assert out["messages"][0]["content"] != data["messages"][0]["content"]
        assert out["messages"][1:] == data["messages"][1:]
        assert out["params"] == data["params"]
    assert yaml.safe_load(egp.variant_text(shipped, "truncated"))["params"]["max_tokens"] == 2
    assert yaml.safe_load(egp.variant_text(shipped, "verbose"))["params"]["ignore_eos"] is True
