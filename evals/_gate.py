"""Turn run results into a verdict. Fail closed: anything that makes the numbers untrustworthy
(errors, judge failures, too few scored cases, a metric with no scores) fails the gate.

Per metric, with scores oriented so that higher is better and ``m = max_regression``:

- threshold: the head mean must be >= ``threshold`` (<= for lower-is-better metrics);
- comparison: paired per-case deltas ``head_i - base_i`` get a bootstrap CI at ``confidence``;
  the metric *regressed* when the whole CI lies below ``-m`` (fail), is *non-inferior* when the
  whole CI lies at or above ``-m`` (pass), and is *inconclusive* otherwise (verdict set by
  ``gate.inconclusive``, default pass, always shown in the report).
"""

from __future__ import annotations

from evals._results import GateSettings, MetricVerdict, RunResult, SuiteVerdict
from evals._stats import bootstrap_mean_ci, classify, stable_seed
from evals._suite import MetricSpec, Suite


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
        v = MetricVerdict(
            metric=m.id,
            type=m.type,
            higher_is_better=m.higher_is_better,
            threshold=m.threshold,
            max_regression=m.max_regression,
            head_mean=run.means.get(m.id),
        )
        n = sum(1 for c in run.cases if c.scores.get(m.id) is not None)
        v.n_paired = n
        _threshold(m, v.head_mean, v)
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


def gate_compare(suite: Suite, base: RunResult, head: RunResult) -> SuiteVerdict:
    """Base vs head: thresholds on head, paired bootstrap CIs, health of both runs."""
    g = suite.gate
    reasons: list[str] = []
    _health(suite, base, reasons)
    _health(suite, head, reasons)
    base_by = {c.case_id: c for c in base.cases}
    verdicts: list[MetricVerdict] = []
    for m in suite.metrics:
        v = MetricVerdict(
            metric=m.id,
            type=m.type,
            higher_is_better=m.higher_is_better,
            threshold=m.threshold,
            max_regression=m.max_regression,
            base_mean=base.means.get(m.id),
            head_mean=head.means.get(m.id),
        )
        deltas: dict[str, float] = {}
        for c in head.cases:
            b = base_by.get(c.case_id)
            hs, bs = c.scores.get(m.id), b.scores.get(m.id) if b else None
            if hs is not None and bs is not None:
                deltas[c.case_id] = hs - bs
        v.deltas = deltas
        v.n_paired = len(deltas)
        _threshold(m, v.head_mean, v)
        if v.status == "error":
            verdicts.append(v)
            continue
        if len(deltas) < g.min_cases:
            v.status = "error"
            v.reasons.append(f"only {len(deltas)} paired cases (gate.min_cases {g.min_cases})")
            verdicts.append(v)
            continue
        mean, lo, hi = bootstrap_mean_ci(
            list(deltas.values()),
            confidence=g.confidence,
            samples=g.bootstrap_samples,
            seed=stable_seed(suite.seed, suite.name, m.id),
        )
        v.delta, v.ci_low, v.ci_high = mean, lo, hi
        olo, ohi = (lo, hi) if m.higher_is_better else (-hi, -lo)
        kind = classify(olo, ohi, m.max_regression)
        ci = f"[{_fmt(lo)}, {_fmt(hi)}]"
        if kind == "regression":
            v.status = "fail"
            v.reasons.append(
                f"regression: delta {_fmt(mean)}, {g.confidence:.0%} CI {ci} is entirely worse "
                f"than the allowed {_fmt(m.max_regression)}"
            )
        elif kind == "inconclusive" and v.status == "pass":
            v.status = "fail" if g.inconclusive == "fail" else "inconclusive"
            v.reasons.append(
                f"inconclusive: {g.confidence:.0%} CI {ci} reaches past the allowed regression "
                f"{_fmt(m.max_regression)}; more cases or repeats would narrow it"
            )
        verdicts.append(v)
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
