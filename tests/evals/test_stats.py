"""The statistics on known cases: zero-width intervals for identical outputs, and the gate's power
and false-alarm rate measured over repeated synthetic trials (printed; run with -s to see)."""

from __future__ import annotations

import numpy as np
import pytest

from evals import MetricSpec, Suite, bootstrap_mean_ci, classify, gate_compare, gate_run
from evals._results import CaseResult, Generation, RepeatResult, RunResult, TargetInfo
from evals._stats import cases_needed, min_detectable

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
    """``inconclusive: pass`` (fail only on a significant regression) at a small allowance."""
    m = 0.02
    suite = _suite(m, inconclusive="pass")
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
    """``inconclusive: pass`` at a small allowance: power against a large drop only."""
    m = 0.05
    suite = _suite(m, inconclusive="pass")
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


@pytest.mark.parametrize(
    ("make", "n", "sd"),
    [
        (_continuous, 40, 0.1),
        # head independent of base, p_i ~ U(0.5, 1): sd of a delta = sqrt(2 E[p(1-p)]) = 0.577
        (_binary, 100, float(np.sqrt(1 / 3))),
    ],
    ids=["continuous", "binary"],
)
def test_default_gate_meets_its_stated_error_rates(make, n: int, sd: float) -> None:  # type: ignore[no-untyped-def]
    """The default gate (``inconclusive: fail``) with the allowance set to the minimum
    detectable regression at 95% power: a no-op fails at most ~5% of the time, a regression of
    the allowance fails ~97.5% of the time (one-sided test at 2.5%), twice it always."""
    m = min_detectable(sd, n, confidence=0.95, power=0.95)
    suite = _suite(m)
    assert suite.gate.inconclusive == "fail"
    no_op = _fail_rate(make(n, 0.0), suite)
    at_m = _fail_rate(make(n, m), suite)
    twice = _fail_rate(make(n, 2 * m), suite)
    print(
        f"\nn={n} sd={sd:.3f} m=mde95={m:.3f}: false fail {no_op:.3f}, "
        f"detect m {at_m:.3f}, 2m {twice:.3f}"
    )
    assert no_op <= 0.09  # nominal 5%; 200 trials
    assert at_m >= 0.9 and twice >= 0.99
    v = gate_compare(
        suite,
        *(
            _run(lbl, x)
            for lbl, x in zip(("base", "head"), make(n, 0.0)(np.random.default_rng(1)), strict=True)
        ),
    )
    got = v.metrics[0]
    assert got.delta_sd is not None and got.mde_95 is not None and got.cases_needed_95
    assert got.mde_95 == pytest.approx(min_detectable(got.delta_sd, n, power=0.95))
    assert got.delta_sd <= sd * 1.1  # the planned sd bounds the observed one (clipping lowers it)
    assert got.cases_needed_95 <= n * 1.25


def test_missing_scores_count_against_the_head_and_are_reported() -> None:
    """A case the head could not score (judge failure, NaN, failed generation) is paired as the
    worst score against the base's, never dropped; one the base could not score as the best."""
    base = np.ones(30)
    head = np.ones(30)
    b, h = _run("base", base), _run("head", head)
    h.cases[0].scores["contains"] = None
    h.cases[1].scores["contains"] = float("nan")
    b.cases[2].scores["contains"] = None
    v = gate_compare(_suite(0.05), b, h)
    m = v.metrics[0]
    assert m.n_paired == 30 and m.n_imputed == 3
    assert m.deltas["c0"] == -1.0 and m.deltas["c1"] == -1.0 and m.deltas["c2"] == 0.0
    assert any("counted as a loss for the head" in r for r in m.reasons)
    assert not v.passed and m.status == "fail"


def test_nan_bounds_read_as_undefined() -> None:
    nan = float("nan")
    assert classify(nan, nan, 0.1) == "undefined"
    assert classify(-0.1, nan, 0.1) == "undefined"
    with pytest.raises(ValueError):
        bootstrap_mean_ci([0.1, nan])


def test_power_formulas() -> None:
    # (z_0.975 + z_0.8) * 0.5 / sqrt(100) = 2.80 * 0.05
    assert min_detectable(0.5, 100) == pytest.approx(0.1401, abs=1e-3)
    assert cases_needed(0.5, 0.1401) in (100, 101)
    assert cases_needed(0.5, 0.0) is None and cases_needed(0.0, 0.0) == 1
    assert min_detectable(0.5, 0) == float("inf")


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


def test_a_metric_not_gated_is_reported_and_never_fails_the_compare() -> None:
    base = np.ones(40)
    head = np.zeros(40)  # a collapse
    gated = gate_compare(_suite(0.0), _run("base", base), _run("head", head))
    assert not gated.passed and gated.metrics[0].status == "fail"
    suite = _suite(0.0)
    suite.metrics[0] = MetricSpec(type="contains", gated=False)
    v = gate_compare(suite, _run("base", base), _run("head", head))
    m = v.metrics[0]
    assert v.passed and m.status == "pass" and not m.gated
    assert m.delta == -1.0 and m.ci_high == -1.0  # still measured
    assert any(r.startswith("reported, not gated: delta -1") for r in m.reasons), m.reasons
    assert not gate_run(suite, _run("head", head)).metrics[0].gated  # single runs say so too
    # a threshold still applies to it
    suite.metrics[0] = MetricSpec(type="contains", gated=False, threshold=0.5)
    assert not gate_compare(suite, _run("base", base), _run("head", head)).passed
