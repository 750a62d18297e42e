"""Paired bootstrap confidence intervals for the mean per-case difference.

Why paired: base and head answer the same cases with the same seeds, so most case-to-case
variation cancels in ``head_i - base_i`` and the interval measures the change, not the spread of
case difficulty. Why the bootstrap: metric scores are bounded, skewed and often binary; resampling
cases assumes nothing about their distribution. Seeded, so a verdict is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def stable_seed(*parts: object) -> int:
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big")


def bootstrap_mean_ci(
    values: Sequence[float] | Any, *, confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean of ``values``.

    Identical values give a zero-width interval at that value. Needs at least one value.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to bootstrap")
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(samples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(lo), float(hi)


def classify(oriented_low: float, oriented_high: float, max_regression: float) -> str:
    """The three-way reading of an interval oriented so that positive means better.

    - ``regression``: the whole interval lies below ``-max_regression`` (worse than allowed,
      significantly: a one-sided test at (1 - confidence) / 2).
    - ``non_inferior``: the whole interval lies at or above ``-max_regression``.
    - ``inconclusive``: the interval straddles ``-max_regression``.
    """
    if oriented_high < -max_regression:
        return "regression"
    if oriented_low >= -max_regression:
        return "non_inferior"
    return "inconclusive"
