"""Choose a collection's search mode by measurement: every mode of a grid scored on judged
queries (BEIR's queries.jsonl and qrels TSV), the choice made on cross-validated folds, and a
fallback to dense (the mode that never loses badly) unless the choice beats it out of sample.

The reported score of the choice is its held-out one: each query is scored by the mode chosen
on the other folds, so no query both picks a mode and grades it.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evals._errors import EvalError
from evals._metrics import ndcg_at_k, recall_at_k
from evals._stats import bootstrap_mean_ci, stable_seed
from retrieval import CollectionMeta, Hit, Retriever, SearchMode

K = 10


class TuneError(EvalError):
    """Judged data that cannot be read or judges nothing in the collection."""


@dataclass(frozen=True, slots=True)
class Candidate:
    label: str
    mode: SearchMode
    rrf_k: int | None = None
    weights: tuple[float, float] | None = None
    alpha: float | None = None

    def search_kwargs(self) -> dict[str, Any]:
        return {"mode": self.mode, "rrf_k": self.rrf_k, "weights": self.weights,
                "alpha": self.alpha}  # fmt: skip

    def recorded(self) -> dict[str, Any]:
        """What the collection's metadata keeps (the fields search reads)."""
        out: dict[str, Any] = {"mode": self.mode}
        if self.mode == "rrf":
            out |= {"rrf_k": self.rrf_k, "weights": self.weights}
        if self.mode == "convex":
            out["alpha"] = self.alpha
        return out


def grid() -> list[Candidate]:
    """Dense first: on equal scores the earlier (simpler) mode wins."""
    out = [Candidate("dense", "dense"), Candidate("bm25", "sparse")]
    for k in (2, 10, 60):
        for w in (None, (2.0, 1.0), (1.0, 2.0)):
            tail = f" w={w[0]:g}:{w[1]:g}" if w else ""
            out.append(Candidate(f"rrf k={k}{tail}", "rrf", rrf_k=k, weights=w))
    out.append(Candidate("dbsf", "dbsf"))
    for a in (0.3, 0.5, 0.7, 0.9):
        out.append(Candidate(f"convex a={a:g}", "convex", alpha=a))
    return out


@dataclass(slots=True)
class Judged:
    queries: dict[str, str]  # query id -> text, only queries with a relevant document
    relevant: dict[str, set[str]]  # query id -> relevant document ids (grade > 0)


def load_judged(queries: Path, qrels: Path) -> Judged:
    """BEIR formats: ``{"_id", "text"}`` JSON lines, and ``query-id corpus-id score`` tab-
    separated (a header line is allowed). Relevance is binary: any grade above 0."""
    texts: dict[str, str] = {}
    try:
        for n, line in enumerate(queries.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or "_id" not in row or "text" not in row:
                raise TuneError(f"{queries}:{n}: expected a JSON object with _id and text")
            texts[str(row["_id"])] = str(row["text"])
    except OSError as exc:
        raise TuneError(f"cannot read queries: {exc}") from None
    except json.JSONDecodeError as exc:
        raise TuneError(f"{queries}: not JSON lines ({exc})") from None
    relevant: dict[str, set[str]] = {}
    try:
        with qrels.open(newline="") as fh:
            for n, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
                if not row or (n == 1 and row[0] == "query-id"):
                    continue
                if len(row) < 3:
                    raise TuneError(f"{qrels}:{n}: expected query-id, corpus-id and score")
                try:
                    grade = float(row[-1])
                except ValueError:
                    raise TuneError(f"{qrels}:{n}: score {row[-1]!r} is not a number") from None
                if grade > 0:
                    relevant.setdefault(row[0], set()).add(row[-2])
    except OSError as exc:
        raise TuneError(f"cannot read qrels: {exc}") from None
    judged = {q: t for q, t in texts.items() if q in relevant}
    if not judged:
        raise TuneError(
            f"no judged data: none of the {len(texts)} queries in {queries} has a relevant "
            f"document in {qrels}"
        )
    return Judged(judged, {q: relevant[q] for q in judged})


def document_id(id_field: str | None) -> Callable[[Hit], str]:
    """Chunk hits name their document by a metadata field, or by the file's name without its
    suffix (one file per corpus document, named by its id)."""
    if id_field:
        return lambda h: str(h.metadata.get(id_field, ""))
    return lambda h: Path(h.source).stem


@dataclass(slots=True)
class ModeScores:
    candidate: Candidate
    ndcg: np.ndarray
    recall: np.ndarray
    picked: int = 0


@dataclass(slots=True)
class TuneResult:
    collection: str
    queries: int
    folds: int
    scores: list[ModeScores]
    chosen: Candidate
    reason: str
    held_out: np.ndarray  # per query: nDCG@10 of the mode chosen without it
    picks: list[str] = field(default_factory=list)  # the mode chosen in each fold

    def by_label(self, label: str) -> ModeScores:
        return next(s for s in self.scores if s.candidate.label == label)

    def summary(self) -> dict[str, Any]:
        dense = self.by_label("dense")

        def ci(x: np.ndarray) -> list[float]:
            return [round(v, 4) for v in bootstrap_mean_ci(x, seed=stable_seed("tune"))]

        modes = {
            s.candidate.label: {
                **s.candidate.recorded(),
                "ndcg@10": ci(s.ndcg),
                "recall@10": ci(s.recall),
                "vs_dense_ndcg@10": ci(s.ndcg - dense.ndcg),
                "picked_in_folds": s.picked,
            }
            for s in self.scores
        }
        return {
            "at": round(time.time(), 3),
            "queries": self.queries,
            "folds": self.folds,
            "chosen": self.chosen.label,
            "reason": self.reason,
            "held_out_ndcg@10": ci(self.held_out),
            "held_out_vs_dense_ndcg@10": ci(self.held_out - dense.ndcg),
            "modes": modes,
        }


def score_modes(
    retriever: Retriever, collection: str, judged: Judged, *, candidates: Sequence[Candidate],
    depth: int = 100, id_field: str | None = None,
) -> list[ModeScores]:  # fmt: skip
    """Each candidate's nDCG@10 and recall@10 per query, over chunk hits collapsed to
    documents (the first ``depth`` chunks)."""
    doc = document_id(id_field)
    out = []
    for cand in candidates:

        def ranked(text: str, cand: Candidate = cand) -> list[str]:
            hits = retriever.search_sync(collection, text, depth, **cand.search_kwargs())
            return [doc(h) for h in hits]

        out.append(ModeScores(cand, *score_ranking(ranked, judged)))
    return out


def score_ranking(
    ranked: Callable[[str], Sequence[str]], judged: Judged
) -> tuple[np.ndarray, np.ndarray]:
    """nDCG@10 and recall@10 per judged query of a search that returns, for a query's text,
    the documents of its chunk hits best first (repeats collapse to the first)."""
    ids = list(judged.queries)
    nd, rc = np.zeros(len(ids)), np.zeros(len(ids))
    for n, q in enumerate(ids):
        docs = list(dict.fromkeys(ranked(judged.queries[q])))
        gold = sorted(judged.relevant[q])
        nd[n], rc[n] = ndcg_at_k(docs, gold, K), recall_at_k(docs, gold, K)
    return nd, rc


def choose(collection: str, scores: list[ModeScores], folds: int = 5) -> TuneResult:
    """Pick on folds; keep dense unless the held-out scores of the picking beat dense's and
    the mode picked is not itself below dense beyond its interval on all queries."""
    n = len(scores[0].ndcg)
    folds = max(2, min(folds, n)) if n >= 2 else 1
    order = np.random.default_rng(stable_seed("tune", collection)).permutation(n)
    held_out = np.zeros(n)
    picks: list[str] = []
    matrix = np.stack([s.ndcg for s in scores])  # modes x queries
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test) if folds > 1 else order
        best = int(np.argmax(matrix[:, train].mean(axis=1)))  # first of equals: the simplest
        scores[best].picked += 1
        picks.append(scores[best].candidate.label)
        held_out[test] = matrix[best, test]
    dense = scores[0]
    assert dense.candidate.mode == "dense"
    counts = Counter(picks)
    top = max(counts.values())
    chosen = next(s for s in scores if counts.get(s.candidate.label) == top)
    seed = stable_seed("tune")
    gain = bootstrap_mean_ci(held_out - dense.ndcg, seed=seed)
    own = bootstrap_mean_ci(chosen.ndcg - dense.ndcg, seed=seed)
    if chosen is dense:
        reason = "dense won on the folds"
    elif gain[0] <= 0:
        reason = (
            f"{chosen.candidate.label} was picked on the folds but the picking scored "
            f"{gain[0]:+.4f} nDCG@10 against dense on held-out queries: dense kept"
        )
        chosen = dense
    elif own[2] < 0:
        reason = f"{chosen.candidate.label} scores below dense beyond its interval: dense kept"
        chosen = dense
    else:
        reason = (f"picked in {top} of {folds} folds; held-out nDCG@10 {gain[0]:+.4f} "
                  f"[{gain[1]:+.4f}, {gain[2]:+.4f}] against dense")  # fmt: skip
    return TuneResult(collection, n, folds, scores, chosen.candidate, reason, held_out, picks)


def record(retriever: Retriever, result: TuneResult) -> CollectionMeta:
    """Write the choice and its measurements into the collection's metadata; search reads them."""
    meta = retriever.collection_meta(result.collection)
    update = result.chosen.recorded() | {"tuning": result.summary()}
    if result.chosen.mode == "rrf":
        update["rrf_k"] = result.chosen.rrf_k or meta.rrf_k
    new = meta.model_copy(update=update)
    retriever.store.update_meta(result.collection, CollectionMeta.model_validate(new.model_dump()))
    retriever.forget_meta(result.collection)
    return new
