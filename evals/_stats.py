"""Paired bootstrap confidence intervals for the mean per-case difference, and the gate's power.

Why paired: base and head answer the same cases with the same seeds, so most case-to-case
variation cancels in ``head_i - base_i`` and the interval measures the change, not the spread of
case difficulty. Why the bootstrap: metric scores are bounded, skewed and often binary; resampling
cases assumes nothing about their distribution. Why BCa (``scipy.stats.bootstrap``, bias-corrected
and accelerated): the percentile interval of a skewed mean undercovers at the case counts suites
have. Seeded, so a verdict is reproducible.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats

Reading = Literal["regression", "non_inferior", "inconclusive", "undefined"]


def stable_seed(*parts: object) -> int:
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big")


def bootstrap_mean_ci(
    values: Sequence[float] | Any, *, confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): BCa bootstrap interval of the mean of ``values`` (per-case deltas).

    Identical values give a zero-width interval at that value. Needs at least one value and no
    NaN (a missing score is imputed before, see ``evals._gate``); raises ``ValueError`` else.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to bootstrap")
    if not np.all(np.isfinite(x)):
        raise ValueError("values to bootstrap must be finite (NaN or inf found)")
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return mean, mean, mean
    with warnings.catch_warnings():
        # BCa on a nearly constant sample (one case differs) warns and may give NaN bounds;
        # those fall back to the percentile interval below.
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            n_resamples=samples,
            method="BCa",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        dist = res.bootstrap_distribution
        alpha = (1.0 - confidence) / 2.0
        lo, hi = (float(q) for q in np.quantile(dist, [alpha, 1.0 - alpha]))
    return mean, lo, hi


_BOOTSTRAP_MAX = 5000


def bootstrap_diff_ci(
    a: Sequence[float] | Any,
    b: Sequence[float] | Any,
    *,
    confidence: float = 0.95,
    samples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean(b) - mean(a), low, high) for two independent samples (live traffic of two
    variants, where no case pairs them): a percentile bootstrap resampling each side alone.

    Past ``_BOOTSTRAP_MAX`` values a side, the normal interval replaces it: the means are then
    normal to well within the bootstrap's own noise, and resampling would cost gigabytes.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need at least one value")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("values to bootstrap must be finite (NaN or inf found)")
    diff = float(y.mean() - x.mean())
    if x.size == 1 and y.size == 1:
        return diff, diff, diff
    if max(x.size, y.size) > _BOOTSTRAP_MAX:
        se = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        z = float(stats.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
        return diff, diff - z * se, diff + z * se
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, x.size, (samples, x.size))].mean(axis=1)
    my = y[rng.integers(0, y.size, (samples, y.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = (float(q) for q in np.quantile(my - mx, [alpha, 1.0 - alpha]))
    return diff, lo, hi


def classify(oriented_low: float, oriented_high: float, max_regression: float) -> Reading:
    """The three-way reading of an interval oriented so that positive means better.

    - ``regression``: the whole interval lies below ``-max_regression`` (worse than allowed,
      significantly: a one-sided test at (1 - confidence) / 2).
    - ``non_inferior``: the whole interval lies at or above ``-max_regression``.
    - ``inconclusive``: the interval straddles ``-max_regression``.
    - ``undefined``: a bound is NaN (no interval to read); the gate fails it.
    """
    if not (math.isfinite(oriented_low) and math.isfinite(oriented_high)):
        return "undefined"
    if oriented_high < -max_regression:
        return "regression"
    if oriented_low >= -max_regression:
        return "non_inferior"
    return "inconclusive"


def _z_sum(confidence: float, power: float) -> float:
    """z of the one-sided test the gate makes ((1 - confidence) / 2) plus z of ``power``."""
    alpha = (1.0 - confidence) / 2.0
    return float(stats.norm.ppf(1.0 - alpha) + stats.norm.ppf(power))


def min_detectable(sd: float, n: int, *, confidence: float = 0.95, power: float = 0.8) -> float:
    """The smallest mean change the gate tells from no change at ``power``, with ``n`` paired
    cases whose deltas have standard deviation ``sd`` (normal approximation of the mean).

    Read for the gate (which passes only when the interval's lower bound clears
    ``-max_regression``): an allowance at or above this value lets an unchanged candidate pass
    with probability ``power``, and a regression of the allowance or more fails with at least
    1 - (1 - confidence) / 2. Below it, the gate fails harmless edits too often to be useful.
    """
    if n <= 0:
        return math.inf
    return _z_sum(confidence, power) * sd / math.sqrt(n)


def cases_needed(
    sd: float, allowance: float, *, confidence: float = 0.95, power: float = 0.8
) -> int | None:
    """Paired cases for ``min_detectable(sd, n) <= allowance``; None when the allowance is 0
    (nothing but identical outputs can pass such a gate) and 1 when the deltas do not vary."""
    if allowance <= 0:
        return None if sd > 0 else 1
    return max(1, math.ceil((_z_sum(confidence, power) * sd / allowance) ** 2))


def delta_sd(deltas: Sequence[float] | Any) -> float:
    """Sample standard deviation of per-case deltas (0 for fewer than two)."""
    x = np.asarray(deltas, dtype=float)
    return float(x.std(ddof=1)) if x.size > 1 else 0.0


def binary_delta_sd(p: float) -> float:
    """Planning value for a pass/fail metric with pass rate ``p`` before any comparison: the
    delta's sd when base and head answer independently, sqrt(2 p (1 - p)). Paired runs of a
    similar prompt agree on most cases, so the observed sd is usually lower: an upper bound."""
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(2.0 * p * (1.0 - p))
