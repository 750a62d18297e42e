"""Turn run results into a verdict. Fail closed: anything that makes the numbers untrustworthy
(errors, judge failures, too few scored cases, a metric with no scores) fails the gate.

Per metric, with scores oriented so that higher is better and ``m = max_regression``:

- threshold: the head mean must be >= ``threshold`` (<= for lower-is-better metrics);
- comparison: paired per-case deltas ``head_i - base_i`` get a BCa bootstrap CI at
  ``confidence``; the metric *regressed* when the whole CI lies below ``-m`` (fail), is
  *non-inferior* when the whole CI lies at or above ``-m`` (pass), and is *inconclusive*
  otherwise (verdict set by ``gate.inconclusive``, default fail, always shown in the report);
- a case where either side has no score (a failed generation, a judge failure, NaN) is never
  dropped from the pairing: the head's missing score counts as the worst score seen, the base's
  as the best, so what cannot be scored is a loss for the head, and the report counts them;
- power: from the deltas' sd, the minimum detectable regression at 80% and 95% power and the
  cases the suite needs for its allowance, in every report.
"""

from __future__ import annotations

import math

from evals._results import GateSettings, MetricVerdict, RunResult, SuiteVerdict
from evals._stats import (
    binary_delta_sd,
    bootstrap_mean_ci,
    cases_needed,
    classify,
    delta_sd,
    min_detectable,
    stable_seed,
)
from evals._suite import BINARY_METRICS, LOWER_IS_BETTER, MetricSpec, Suite


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _first_error(run: RunResult) -> str:
    for c in run.cases:
        for rp in c.repeats:
            if rp.generation.error:
                return f"case {c.case_id}: {rp.generation.error}"
    return ""


def _health(suite: Suite, run: RunResult, reasons: list[str]) -> None:
    label = run.target.label
    if run.generations == 0:
        reasons.append(f"{label}: no generations")
        return
    if run.generation_errors == run.generations:
        reasons.append(f"{label}: every generation failed ({_first_error(run)})")
    elif run.error_rate > suite.gate.max_error_rate:
        reasons.append(
            f"{label}: {run.generation_errors}/{run.generations} generations failed "
            f"(allowed rate {suite.gate.max_error_rate:.0%}); first: {_first_error(run)}"
        )
    if run.judge_calls and run.judge_failure_rate > suite.judge.max_failure_rate:
        first = next(
            (e for c in run.cases for rp in c.repeats for e in rp.judge_errors.values()), ""
        )
        reasons.append(
            f"{label}: judge failed on {run.judge_failures}/{run.judge_calls} scores "
            f"({run.judge_failure_rate:.0%} > allowed {suite.judge.max_failure_rate:.0%}); "
            f"first: {first[:200]}"
        )


def _threshold(m: MetricSpec, mean: float | None, v: MetricVerdict) -> None:
    if mean is None:
        v.status = "error"
        v.reasons.append("no case produced a score")
        return
    if m.threshold is None:
        return
    ok = mean >= m.threshold if m.higher_is_better else mean <= m.threshold
    if not ok:
        v.status = "fail"
        op = ">=" if m.higher_is_better else "<="
        v.reasons.append(f"head mean {_fmt(mean)} misses threshold {op} {_fmt(m.threshold)}")


def gate_run(suite: Suite, run: RunResult) -> SuiteVerdict:
    """A single run: thresholds plus the health checks."""
    reasons: list[str] = []
    _health(suite, run, reasons)
    verdicts: list[MetricVerdict] = []
    for m in suite.metrics:
        v = _verdict(m, head_mean=run.means.get(m.id))
        n = sum(1 for c in run.cases if _score(c.scores.get(m.id)) is not None)
        v.n_paired = n
        _threshold(m, v.head_mean, v)
        if n:
            power(suite, m, v, planned_sd(m, run), n)
        if v.status != "error" and n < suite.gate.min_cases:
            v.status = "error"
            v.reasons.append(f"only {n} scored cases (gate.min_cases {suite.gate.min_cases})")
        verdicts.append(v)
    passed = not reasons and all(v.status == "pass" for v in verdicts)
    return SuiteVerdict(
        suite=suite.name,
        mode="run",
        passed=passed,
        reasons=reasons,
        metrics=verdicts,
        head=run,
        confidence=suite.gate.confidence,
        gate=GateSettings.of(suite),
    )


def _score(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def paired_deltas(m: MetricSpec, base: RunResult, head: RunResult) -> tuple[dict[str, float], int]:
    """(head - base per base case, how many were imputed): a missing head score is the worst
    score seen on either side, a missing base score the best (bounded metrics extend that to
    0 and 1), so a case nobody could score counts against the head instead of vanishing."""
    head_by = {c.case_id: c for c in head.cases}
    seen = [
        x
        for run in (base, head)
        for c in run.cases
        if (x := _score(c.scores.get(m.id))) is not None
    ]
    lo, hi = (min(seen), max(seen)) if seen else (0.0, 1.0)
    if m.type not in LOWER_IS_BETTER:
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    worst, best = (lo, hi) if m.higher_is_better else (hi, lo)
    deltas: dict[str, float] = {}
    imputed = 0
    for b in base.cases:
        h = head_by.get(b.case_id)
        hs = _score(h.scores.get(m.id)) if h is not None else None
        bs = _score(b.scores.get(m.id))
        if hs is None or bs is None:
            imputed += 1
        deltas[b.case_id] = (worst if hs is None else hs) - (best if bs is None else bs)
    return deltas, imputed


def _verdict(m: MetricSpec, **means: float | None) -> MetricVerdict:
    """A metric's verdict before scoring: what the suite says of it, and the sides' means."""
    return MetricVerdict(
        metric=m.id,
        type=m.type,
        higher_is_better=m.higher_is_better,
        threshold=m.threshold,
        max_regression=m.max_regression,
        gated=m.gated,
        **means,
    )


def power(suite: Suite, m: MetricSpec, v: MetricVerdict, sd: float, n: int) -> None:
    """Fill the verdict's minimum detectable regressions and the cases its allowance needs."""
    c = suite.gate.confidence
    v.delta_sd = sd
    v.mde_80 = min_detectable(sd, n, confidence=c, power=0.8)
    v.mde_95 = min_detectable(sd, n, confidence=c, power=0.95)
    v.cases_needed_80 = cases_needed(sd, m.max_regression, confidence=c, power=0.8)
    v.cases_needed_95 = cases_needed(sd, m.max_regression, confidence=c, power=0.95)


def planned_sd(m: MetricSpec, run: RunResult) -> float:
    """The delta sd to plan with from one run: for a pass/fail metric the independent-answers
    bound at the run's pass rate, else sqrt(2) x the per-case scores' sd (no pairing gain
    assumed; a comparison then measures the real one). A measured ``delta_sd`` in the suite
    wins over both."""
    if m.delta_sd is not None:
        return m.delta_sd
    vals = [x for c in run.cases if (x := _score(c.scores.get(m.id))) is not None]
    if not vals:
        return math.nan
    if m.type in BINARY_METRICS and run.cases and len(run.cases[0].repeats) == 1:
        return binary_delta_sd(sum(vals) / len(vals))
    return math.sqrt(2.0) * delta_sd(vals)


def _interval(suite: Suite, m: MetricSpec, v: MetricVerdict, deltas: dict[str, float]) -> None:
    """The bootstrap interval of the mean delta and the verdict it reads as."""
    g = suite.gate
    mean, lo, hi = bootstrap_mean_ci(
        list(deltas.values()),
        confidence=g.confidence,
        samples=g.bootstrap_samples,
        seed=stable_seed(suite.seed, suite.name, m.id),
    )
    v.delta, v.ci_low, v.ci_high = mean, lo, hi
    ci = f"[{_fmt(lo)}, {_fmt(hi)}]"
    if not m.gated:
        v.reasons.append(f"reported, not gated: delta {_fmt(mean)}, {g.confidence:.0%} CI {ci}")
        return
    olo, ohi = (lo, hi) if m.higher_is_better else (-hi, -lo)
    kind = classify(olo, ohi, m.max_regression)
    if kind == "undefined":
        v.status = "error"
        v.reasons.append(f"no interval could be computed (CI {ci})")
    elif kind == "regression":
        v.status = "fail"
        v.reasons.append(
            f"regression: delta {_fmt(mean)}, {g.confidence:.0%} CI {ci} is entirely worse "
            f"than the allowed {_fmt(m.max_regression)}"
        )
    elif kind == "inconclusive" and v.status == "pass":
        v.status = "fail" if g.inconclusive == "fail" else "inconclusive"
        need = v.cases_needed_80
        more = f"; about {need} cases would make it detectable" if need else ""
        v.reasons.append(
            f"inconclusive: {g.confidence:.0%} CI {ci} reaches past the allowed regression "
            f"{_fmt(m.max_regression)} (detectable at this n: {_fmt(v.mde_80)}){more}"
        )


def gate_compare(suite: Suite, base: RunResult, head: RunResult) -> SuiteVerdict:
    """Base vs head over the base's cases: thresholds on head, paired bootstrap CIs, power,
    health of both runs."""
    g = suite.gate
    reasons: list[str] = []
    _health(suite, base, reasons)
    _health(suite, head, reasons)
    verdicts: list[MetricVerdict] = []
    for m in suite.metrics:
        v = _verdict(m, base_mean=base.means.get(m.id), head_mean=head.means.get(m.id))
        deltas, v.n_imputed = paired_deltas(m, base, head)
        v.deltas = deltas
        v.n_paired = len(deltas)
        verdicts.append(v)
        if v.n_imputed:
            v.reasons.append(
                f"{v.n_imputed} case(s) without a score on a side, counted as a loss for the head"
            )
        _threshold(m, v.head_mean, v)
        if v.status == "error":
            continue
        if len(deltas) < g.min_cases:
            v.status = "error"
            v.reasons.append(f"only {len(deltas)} paired cases (gate.min_cases {g.min_cases})")
            continue
        power(suite, m, v, delta_sd(list(deltas.values())), len(deltas))
        _interval(suite, m, v, deltas)
    failed = [v for v in verdicts if v.status in ("fail", "error")]
    passed = not reasons and not failed
    return SuiteVerdict(
        suite=suite.name,
        mode="compare",
        passed=passed,
        reasons=reasons,
        metrics=verdicts,
        base=base,
        head=head,
        confidence=g.confidence,
        gate=GateSettings.of(suite),
    )
