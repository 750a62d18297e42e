"""The statistics on known cases: zero-width intervals for identical outputs, and the gate's power
and false-alarm rate measured over repeated synthetic trials (printed; run with -s to see)."""

from __future__ import annotations

import numpy as np
import pytest

from evals import MetricSpec, Suite, bootstrap_mean_ci, classify, gate_compare
from evals._results import CaseResult, Generation, RepeatResult, RunResult, TargetInfo

TRIALS = 200


def _suite(max_regression: float, **gate: object) -> Suite:
    return Suite(
        name="synthetic",
        dataset="x.jsonl",
        seed=1,
        metrics=[MetricSpec(type="contains", max_regression=max_regression)],
        gate={"min_cases": 5, **gate},
    )


def _run(label: str, scores: np.ndarray) -> RunResult:
    cases = [
        CaseResult(
            case_id=f"c{i}",
            scores={"contains": float(s)},
            repeats=[
                RepeatResult(
                    repeat=0, generation=Generation(text="x"), scores={"contains": float(s)}
                )
            ],
        )
        for i, s in enumerate(scores)
    ]
    return RunResult(
        suite="synthetic",
        target=TargetInfo(label=label, model="m"),
        cases=cases,
        generations=len(cases),
        means={"contains": float(np.mean(scores))},
    )


def test_identical_outputs_give_zero_width_interval_and_pass() -> None:
    scores = np.array([0.2, 0.9, 1.0, 0.0, 0.5, 0.7])
    mean, lo, hi = bootstrap_mean_ci(scores - scores)
    assert (mean, lo, hi) == (0.0, 0.0, 0.0)
    v = gate_compare(_suite(0.0), _run("base", scores), _run("head", scores.copy()))
    m = v.metrics[0]
    assert v.passed and m.status == "pass" and (m.ci_low, m.ci_high) == (0.0, 0.0)


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 1.0, 50)
    a = bootstrap_mean_ci(x, seed=5)
    assert a == bootstrap_mean_ci(x, seed=5)
    assert a[1] < a[0] < a[2]
    assert a[1] < 0.3 < a[2]


def test_classify_boundaries() -> None:
    assert classify(-0.3, -0.2, 0.1) == "regression"
    assert classify(-0.1, 0.2, 0.1) == "non_inferior"  # lower bound exactly at -m: allowed
    assert classify(-0.2, 0.05, 0.1) == "inconclusive"
    assert classify(-0.2, -0.1, 0.1) == "inconclusive"  # high end touches -m: not significant


def _fail_rate(make_pair, suite: Suite, trials: int = TRIALS) -> float:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(12345)
    fails = 0
    for _ in range(trials):
        base, head = make_pair(rng)
        v = gate_compare(suite, _run("base", base), _run("head", head))
        fails += not v.passed
    return fails / trials


def _continuous(n: int, delta: float):  # type: ignore[no-untyped-def]
    """Per-case quality varies a lot between cases; a change adds noise and shifts by -delta."""

    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        base = rng.uniform(0.2, 0.9, n)
        head = np.clip(base - delta + rng.normal(0.0, 0.1, n), 0.0, 1.0)
        return base, head

    return make


def _binary(n: int, drop: float):  # type: ignore[no-untyped-def]
    """Pass/fail per case: each case has its own difficulty p_i; head passes with p_i - drop,
    independently of base (different outputs, so no pairing shortcut)."""

    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        p = rng.uniform(0.5, 1.0, n)
        base = (rng.random(n) < p).astype(float)
        head = (rng.random(n) < np.clip(p - drop, 0, 1)).astype(float)
        return base, head

    return make


def test_power_and_false_alarms_continuous() -> None:
    m = 0.02
    suite = _suite(m)
    power = _fail_rate(_continuous(40, 0.07), suite)
    at_margin = _fail_rate(_continuous(40, m), suite)
    no_change = _fail_rate(_continuous(40, 0.0), suite)
    print(
        f"\ncontinuous n=40 sd=0.1 m={m}: power(delta=0.07)={power:.3f} "
        f"false-alarm(delta=m)={at_margin:.3f} false-alarm(delta=0)={no_change:.3f}"
    )
    assert power >= 0.8
    assert at_margin <= 0.10
    assert no_change <= 0.05


def test_power_and_false_alarms_binary() -> None:
    m = 0.05
    suite = _suite(m)
    power = _fail_rate(_binary(100, 0.25), suite)
    at_margin = _fail_rate(_binary(100, m), suite)
    no_change = _fail_rate(_binary(100, 0.0), suite)
    print(
        f"\nbinary n=100 m={m}: power(drop=0.25)={power:.3f} "
        f"false-alarm(drop=m)={at_margin:.3f} false-alarm(drop=0)={no_change:.3f}"
    )
    assert power >= 0.8
    assert at_margin <= 0.10
    assert no_change <= 0.05


@pytest.mark.parametrize("policy", ["pass", "fail"])
def test_inconclusive_policy(policy: str) -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 8)
    head = base + rng.normal(0, 0.3, 8)  # noisy, no real change, tiny sample
    v = gate_compare(_suite(0.01, inconclusive=policy), _run("base", base), _run("head", head))
    m = v.metrics[0]
    assert m.ci_low is not None and m.ci_low < -0.01 <= m.ci_high  # type: ignore[operator]
    assert v.passed is (policy == "pass")
    assert any("inconclusive" in r for r in m.reasons)


def test_too_few_cases_is_an_error() -> None:
    s = np.array([1.0, 0.0, 1.0])
    v = gate_compare(_suite(0.0), _run("base", s), _run("head", s))
    assert not v.passed and v.metrics[0].status == "error"
