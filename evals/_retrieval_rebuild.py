"""Rebuild a collection as a new version and switch its alias only if judged retrieval does not
get worse: ``kb@v4`` is ingested from the sources of what ``kb`` serves, with new chunking or
another embedder, while ``kb`` keeps serving; both versions are scored on the same judged
queries (nDCG@10 and recall@10, the evals' retrieval metrics) and the paired per-query deltas
read with the evals' non-inferiority rule. A failed gate leaves the serving version untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evals._retrieval_tune import Candidate, Judged, ModeScores, score_modes
from evals._stats import bootstrap_mean_ci, classify, stable_seed
from retrieval import (
    CollectionMeta,
    IngestProgress,
    IngestReport,
    RetrievalError,
    Retriever,
    collection_versions,
    prune_versions,
    switch_alias,
)

_CARRIED = ("mode", "rrf_k", "weights", "alpha")  # the search settings a new version inherits


class RebuildError(RetrievalError):
    """Nothing to rebuild from (no collection, no source file left)."""


@dataclass(slots=True)
class Reading:
    metric: str
    baseline: float
    candidate: float
    delta: tuple[float, float, float]  # mean, low, high of candidate - baseline, per query
    reading: str  # non_inferior | inconclusive | regression | undefined

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "baseline": round(self.baseline, 4),
                "candidate": round(self.candidate, 4),
                "delta": [round(v, 4) for v in self.delta], "reading": self.reading}  # fmt: skip


@dataclass(slots=True)
class RebuildResult:
    alias: str
    baseline: str
    candidate: str
    report: IngestReport
    missing: list[str]
    readings: list[Reading]
    max_regression: float
    switched: bool = False
    switch_ms: float | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.reading == "non_inferior" for r in self.readings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias, "baseline": self.baseline, "candidate": self.candidate,
            "passed": self.passed, "switched": self.switched, "switch_ms": self.switch_ms,
            "max_regression": self.max_regression, "missing_sources": self.missing,
            "readings": [r.as_dict() for r in self.readings], "dropped": self.dropped,
        }  # fmt: skip


def _recorded(meta: CollectionMeta) -> Candidate:
    return Candidate("recorded", meta.mode, rrf_k=meta.rrf_k, weights=meta.weights,
                     alpha=meta.alpha)  # fmt: skip


def _read(metric: str, old: np.ndarray, new: np.ndarray, max_regression: float) -> Reading:
    mean, lo, hi = bootstrap_mean_ci(new - old, seed=stable_seed("rebuild", metric))
    return Reading(metric, float(old.mean()), float(new.mean()), (mean, lo, hi),
                   classify(lo, hi, max_regression))  # fmt: skip


def rebuild(
    alias: str,
    judged: Judged,
    *,
    serving: Retriever,
    candidate: Retriever,
    max_regression: float = 0.02,
    keep: int = 1,
    depth: int = 100,
    id_field: str | None = None,
    progress: IngestProgress | None = None,
) -> RebuildResult:
    """Build the next version with ``candidate``'s config, gate it against what ``alias``
    serves (searched through ``serving``, whose embedder built it), switch if it passes.

    Both retrievers share one store. The candidate is dropped when the gate fails; after a
    switch, versions older than the ``keep`` newest previous ones are dropped."""
    store = serving.store
    v = collection_versions(store, alias)
    baseline = v.serving or (alias if v.plain else None)
    if baseline is None:
        raise RebuildError(f"collection {alias!r} does not exist: ingest it first")
    old_meta = serving.collection_meta(baseline)
    sources = sorted(store.sources(baseline))
    present = [s for s in sources if Path(s).is_file()]
    missing = [s for s in sources if s not in present]
    if not present:
        raise RebuildError(
            f"none of the {len(sources)} source files of {baseline!r} exists any more: "
            "nothing to rebuild from"
        )
    name = v.next_name()
    try:
        report = candidate.ingest(present, name, progress=progress)
        new_meta = candidate.collection_meta(name)
        carried = {k: getattr(old_meta, k) for k in _CARRIED}
        store.update_meta(name, new_meta.model_copy(update=carried))
        candidate.forget_meta(name)
        store.optimize(name)
        [old] = score_modes(serving, baseline, judged, candidates=[_recorded(old_meta)],
                            depth=depth, id_field=id_field)  # fmt: skip
        [new] = score_modes(candidate, name, judged,
                            candidates=[_recorded(candidate.collection_meta(name))],
                            depth=depth, id_field=id_field)  # fmt: skip
    except BaseException:
        _drop_quietly(store, name)
        raise
    result = RebuildResult(alias, baseline, name, report, missing,
                           _readings(old, new, max_regression), max_regression)  # fmt: skip
    if not result.passed:
        store.drop_collection(name)
        return result
    result.switch_ms = switch_alias(store, alias, name) * 1000
    result.switched = True
    serving.forget_meta(alias)
    result.dropped = prune_versions(store, alias, keep)
    return result


def _readings(old: ModeScores, new: ModeScores, max_regression: float) -> list[Reading]:
    return [_read("ndcg@10", old.ndcg, new.ndcg, max_regression),
            _read("recall@10", old.recall, new.recall, max_regression)]  # fmt: skip


def _drop_quietly(store: Any, name: str) -> None:
    try:
        if store.collection_meta(name) is not None:
            store.drop_collection(name)
    except Exception:  # the original error is the one to report
        pass
