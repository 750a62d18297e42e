"""The online A/B reading of an alias's variants against its baseline.

Each metric gets the difference of means with a bootstrap interval (the evals' statistics),
the requests per variant a decision at the metric's margin needs, and a reading: worse
(interval wholly past the margin), not worse (interval wholly inside it), or unclear. The
recommendation follows (error rate, latency, user feedback and the monitor's online judge
scores are guarded): roll back when any guarded metric is worse, promote when all are
not worse with enough requests, keep (collect more) otherwise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rollout._records import VariantSample

Recommendation = Literal["promote", "keep", "roll back"]


@dataclass(frozen=True)
class Margins:
    error_rate: float = 0.05  # absolute
    latency_ratio: float = 1.5  # of the baseline's mean
    feedback: float = 0.1  # absolute, on the score's scale
    quality: float = 0.05  # absolute, on the judge metric's 0-1 scale


@dataclass(frozen=True)
class MetricRow:
    metric: str
    higher_is_better: bool
    guarded: bool
    baseline: float | None
    candidate: float | None
    delta: float | None
    low: float | None
    high: float | None
    margin: float | None
    reading: str  # worse | not worse | unclear | no data
    needed: int | None  # requests per variant for a decision at the margin


@dataclass(frozen=True)
class VariantReport:
    variant: str
    requests: int
    error_rate: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_request: float | None
    cost_per_request_usd: float | None
    feedback: dict[str, float]  # mean per feedback name
    online: dict[str, float]  # mean per online judge metric
    online_scored: int  # requests the monitor judged


@dataclass(frozen=True)
class CandidateReport:
    variant: str
    recommendation: Recommendation
    why: str
    rows: list[MetricRow]


@dataclass(frozen=True)
class ABReport:
    alias: str
    baseline: str
    variants: list[VariantReport]
    candidates: list[CandidateReport]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _var(values: list[float]) -> float:
    return statistics.variance(values) if len(values) > 1 else 0.0


def _row(
    metric: str, base: list[float], cand: list[float], margin: float | None, *,
    higher_is_better: bool, guarded: bool, seed: int,
) -> MetricRow:  # fmt: skip
    # The evals' statistics (numpy, scipy): imported here so the gateway's slim install can
    # load this package for `llmops promote`.
    from evals import bootstrap_diff_ci, cases_needed, classify

    if not base or not cand:
        return MetricRow(metric, higher_is_better, guarded, _mean(base), _mean(cand), None,
                         None, None, margin, "no data", None)  # fmt: skip
    delta, lo, hi = bootstrap_diff_ci(base, cand, seed=seed)
    needed = None
    reading = "unclear"
    if margin is not None:
        sign = 1.0 if higher_is_better else -1.0
        o_lo, o_hi = sorted((sign * lo, sign * hi))
        r = classify(o_lo, o_hi, margin)
        reading = {"regression": "worse", "non_inferior": "not worse"}.get(r, "unclear")
        sd = math.sqrt(_var(base) + _var(cand))
        needed = cases_needed(sd, margin)
    return MetricRow(metric, higher_is_better, guarded, _mean(base), _mean(cand), delta, lo, hi,
                     margin, reading, needed)  # fmt: skip


def _summary(s: VariantSample) -> VariantReport:
    return VariantReport(
        s.variant, s.requests, _mean(s.errors) or 0.0,
        _q(s.latency_s, 0.5), _q(s.latency_s, 0.95), _q(s.ttft_s, 0.5), _q(s.ttft_s, 0.95),
        _mean(s.completion_tokens),
        _mean(s.cost_usd),
        {k: statistics.fmean(v) for k, v in sorted(s.scores.items())},
        {k: statistics.fmean(v) for k, v in sorted(s.quality.items())},
        max((len(v) for v in s.quality.values()), default=0),
    )  # fmt: skip


def ab_report(
    alias: str, baseline: str, samples: dict[str, VariantSample], margins: Margins | None = None
) -> ABReport:
    m = margins or Margins()
    base = samples.get(baseline, VariantSample(baseline))
    candidates = []
    for name, s in sorted(samples.items()):
        if name == baseline:
            continue
        base_lat = _mean(base.latency_s)
        rows = [
            _row("error rate", base.errors, s.errors, m.error_rate,
                 higher_is_better=False, guarded=True, seed=1),
            _row("latency mean (s)", base.latency_s, s.latency_s,
                 None if base_lat is None else (m.latency_ratio - 1) * base_lat,
                 higher_is_better=False, guarded=True, seed=2),
            _row("TTFT mean (s)", base.ttft_s, s.ttft_s, None,
                 higher_is_better=False, guarded=False, seed=3),
            _row("completion tokens", base.completion_tokens, s.completion_tokens, None,
                 higher_is_better=False, guarded=False, seed=4),
            _row("cost per request (USD)", base.cost_usd, s.cost_usd, None,
                 higher_is_better=False, guarded=False, seed=5),
        ]  # fmt: skip
        for i, score in enumerate(sorted(set(base.scores) | set(s.scores))):
            rows.append(
                _row(f"feedback: {score}", base.scores.get(score, []), s.scores.get(score, []),
                     m.feedback, higher_is_better=True, guarded=True, seed=10 + i)
            )  # fmt: skip
        for i, metric in enumerate(sorted(set(base.quality) | set(s.quality))):
            rows.append(
                _row(f"online: {metric}", base.quality.get(metric, []),
                     s.quality.get(metric, []), m.quality, higher_is_better=True, guarded=True,
                     seed=100 + i)
            )  # fmt: skip
        candidates.append(_recommend(name, rows, base.requests, s.requests))
    return ABReport(alias, baseline, [_summary(s) for _, s in sorted(samples.items())], candidates)


def _recommend(variant: str, rows: list[MetricRow], n_base: int, n_cand: int) -> CandidateReport:
    guarded = [r for r in rows if r.guarded and r.reading != "no data"]
    worse = [r.metric for r in guarded if r.reading == "worse"]
    if worse:
        return CandidateReport(variant, "roll back", f"worse beyond the margin: {', '.join(worse)}",
                               rows)  # fmt: skip
    if not guarded:
        return CandidateReport(variant, "keep", "no requests of both variants yet", rows)
    unclear = [r for r in guarded if r.reading != "not worse"]
    if unclear:
        need = max((r.needed or 0) for r in unclear)
        have = min(n_base, n_cand)
        more = f"; about {need} requests per variant needed, {have} so far" if need else ""
        names = ", ".join(r.metric for r in unclear)
        return CandidateReport(variant, "keep", f"not yet clear: {names}{more}", rows)
    return CandidateReport(variant, "promote", "not worse than the baseline on every guarded "
                           "metric, within the margins", rows)  # fmt: skip
