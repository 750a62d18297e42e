"""Rebuild a collection as a new version and switch its alias only if judged retrieval does not
get worse: ``kb@v4`` is ingested from the sources of what ``kb`` serves, with new chunking or
another embedder, while ``kb`` keeps serving; both versions are scored on the same judged
queries (nDCG@10 and recall@10, the evals' retrieval metrics) and the paired per-query deltas
read with the evals' non-inferiority rule. A failed gate leaves the serving version untouched.

The store's part (build, switch, drop, prune) is a backend's: the store itself
(``LocalVersions``), or the gateway that serves it, over its admin API (the embedded engine
lets only one process open a collection's files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from evals._retrieval_tune import Candidate, Judged, document_id, score_ranking
from evals._stats import bootstrap_mean_ci, classify, stable_seed
from retrieval import (
    CollectionMeta,
    IngestProgress,
    Retriever,
    build_next_version,
    prune_versions,
    switch_alias,
)


@dataclass(slots=True)
class Built:
    baseline: str
    name: str
    files: int
    chunks: int
    missing: list[str]


class VersionBackend(Protocol):
    """Where the versions live; ``ranked`` searches one version as it is served."""

    def build(self) -> Built: ...

    def ranked(self, collection: str, query: str) -> list[str]: ...

    def switch(self, name: str) -> float: ...  # milliseconds the switch took

    def drop(self, name: str) -> None: ...

    def prune(self, keep: int) -> list[str]: ...


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
    built: Built
    readings: list[Reading]
    max_regression: float
    switched: bool = False
    switch_ms: float | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> str:
        return self.built.baseline

    @property
    def candidate(self) -> str:
        return self.built.name

    @property
    def missing(self) -> list[str]:
        return self.built.missing

    @property
    def passed(self) -> bool:
        return all(r.reading == "non_inferior" for r in self.readings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias, "baseline": self.baseline, "candidate": self.candidate,
            "passed": self.passed, "switched": self.switched, "switch_ms": self.switch_ms,
            "max_regression": self.max_regression, "missing_sources": self.missing,
            "files": self.built.files, "chunks": self.built.chunks,
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
    backend: VersionBackend,
    *,
    max_regression: float = 0.02,
    keep: int = 1,
) -> RebuildResult:
    """Build the next version, gate it against what ``alias`` serves, switch if it passes.

    The candidate is dropped when the gate fails; after a switch, versions older than the
    ``keep`` newest previous ones are dropped."""
    built = backend.build()
    try:
        old = score_ranking(lambda q: backend.ranked(built.baseline, q), judged)
        new = score_ranking(lambda q: backend.ranked(built.name, q), judged)
    except BaseException:
        try:
            backend.drop(built.name)
        except Exception:  # the original error is the one to report
            pass
        raise
    readings = [_read("ndcg@10", old[0], new[0], max_regression),
                _read("recall@10", old[1], new[1], max_regression)]  # fmt: skip
    result = RebuildResult(alias, built, readings, max_regression)
    if not result.passed:
        backend.drop(built.name)
        return result
    result.switch_ms = backend.switch(built.name)
    result.switched = True
    result.dropped = backend.prune(keep)
    return result


class LocalVersions:
    """The store itself: ``serving`` searches the baseline with the embedder that built it,
    ``candidate`` (sharing its store) builds and searches the new version."""

    def __init__(
        self, alias: str, *, serving: Retriever, candidate: Retriever, depth: int = 100,
        id_field: str | None = None, progress: IngestProgress | None = None,
    ) -> None:  # fmt: skip
        self.alias, self.serving, self.candidate = alias, serving, candidate
        self.depth, self.progress = depth, progress
        self._doc = document_id(id_field)
        self._new: str | None = None
        self._how: dict[str, tuple[Retriever, dict[str, Any]]] = {}

    def build(self) -> Built:
        b = build_next_version(self.alias, serving=self.serving, candidate=self.candidate,
                               progress=self.progress)  # fmt: skip
        self._new = b.name
        return Built(b.baseline, b.name, b.files, b.report.chunks_total, b.missing)

    def ranked(self, collection: str, query: str) -> list[str]:
        how = self._how.get(collection)
        if how is None:
            r = self.candidate if collection == self._new else self.serving
            kwargs = _recorded(r.collection_meta(collection)).search_kwargs()
            how = self._how[collection] = (r, kwargs)
        r, kwargs = how
        return [self._doc(h) for h in r.search_sync(collection, query, self.depth, **kwargs)]

    def switch(self, name: str) -> float:
        ms = switch_alias(self.serving.store, self.alias, name) * 1000
        self.serving.forget_meta(self.alias)
        return ms

    def drop(self, name: str) -> None:
        self.serving.store.drop_collection(name)

    def prune(self, keep: int) -> list[str]:
        return prune_versions(self.serving.store, self.alias, keep)
