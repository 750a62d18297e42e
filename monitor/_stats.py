"""Two-sample test for embedding drift: MMD with an RBF kernel and a permutation p-value.

MMD^2 (biased V-statistic) of samples X (reference) and Y (live) equals ``s^T K s`` for the
pooled kernel matrix K and the label vector s (1/n for X, -1/m for Y). A permutation test
reshuffles the labels: the p-value is the share of shuffles with a statistic at least as large
(with the +1 correction, so it is never 0). All permutations go through one matrix product.
The kernel bandwidth is the median pairwise distance of the pooled sample (the usual heuristic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class TwoSampleResult:
    statistic: float  # MMD^2
    p_value: float
    bandwidth: float
    n_reference: int
    n_live: int
    n_permutations: int


def _subsample(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= k else x[rng.choice(len(x), size=k, replace=False)]


def rbf_kernel(z: np.ndarray, bandwidth: float | None = None) -> tuple[np.ndarray, float]:
    z = np.asarray(z, dtype=np.float64)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    if bandwidth is None:
        iu = np.triu_indices(len(z), k=1)
        med = float(np.median(d2[iu])) if len(iu[0]) else 1.0
        bandwidth = float(np.sqrt(med / 2.0)) if med > 0 else 1.0
    return np.exp(-d2 / (2.0 * bandwidth * bandwidth)), bandwidth


def mmd_permutation_test(
    reference: np.ndarray,
    live: np.ndarray,
    *,
    n_permutations: int = 500,
    max_samples: int = 1000,
    bandwidth: float | None = None,
    seed: int = 0,
) -> TwoSampleResult:
    """Is ``live`` drawn from the same distribution as ``reference``? (small p: no)."""
    rng = np.random.default_rng(seed)
    x = _subsample(np.asarray(reference, dtype=np.float64), max_samples, rng)
    y = _subsample(np.asarray(live, dtype=np.float64), max_samples, rng)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"need at least 2 samples on each side (reference {n}, live {m})")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimensions differ: reference {x.shape[1]}, live {y.shape[1]}")
    k, bw = rbf_kernel(np.vstack([x, y]), bandwidth)
    s = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    observed = float(s @ k @ s)
    # columns: label vectors of the permutations, in chunks to bound memory
    exceed = 0
    done = 0
    chunk = max(1, min(n_permutations, 2_000_000 // (n + m)))
    while done < n_permutations:
        b = min(chunk, n_permutations - done)
        perms = np.stack([rng.permutation(s) for _ in range(b)], axis=1)
        stats = np.einsum("ij,ij->j", perms, k @ perms)
        exceed += int(np.sum(stats >= observed - 1e-12))
        done += b
    p = (exceed + 1) / (n_permutations + 1)
    return TwoSampleResult(max(observed, 0.0), float(p), bw, n, m, n_permutations)
