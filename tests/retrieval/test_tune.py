"""Search modes chosen by measurement: the default for a collection with no judged data
(dense), BM25's length norm measured at the first ingest, the convex fusion, the fold-based
choice of ``llmops retrieval tune`` and what it records, and its errors.

The end-to-end test runs the real embedding model over the Python docs fixtures, with judged
queries written for them (a query names what the module does, not its name)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evals._retrieval_tune import (
    Candidate,
    ModeScores,
    TuneError,
    choose,
    grid,
    load_judged,
)
from retrieval import RetrievalConfig, Retriever, SearchConfig, SparseConfig, StoreConfig
from retrieval._fusion import convex
from retrieval._sparse import mean_length
from retrieval._store import StoredHit

from .conftest import FIXTURES

QUERIES = {
    "q1": "keyed hashing for message authentication with a secret key",
    "q2": "shell-style wildcard matching of file names",
    "q3": "shallow and deep copy operations of objects",
    "q4": "the password database of Unix user accounts",
    "q5": "functions registered to run when the interpreter exits",
    "q6": "parse TOML configuration files",
    "q7": "constants for the leaf nodes of the parse tree",
}
QRELS = {"q1": "hmac", "q2": "fnmatch", "q3": "copy", "q4": "pwd", "q5": "atexit",
         "q6": "tomllib", "q7": "token"}  # fmt: skip


def _judged(tmp_path: Path, qrels: dict[str, str] = QRELS) -> tuple[Path, Path]:
    q = tmp_path / "queries.jsonl"
    q.write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in QUERIES.items()))
    r = tmp_path / "qrels.tsv"
    r.write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{k}\t{v}\t1\n" for k, v in qrels.items())
    )
    return q, r


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    shutil.copytree(FIXTURES / "pydocs" / "library", docs)
    return docs


# --- BM25 length, convex fusion ---------------------------------------------------------------


def test_mean_length_counts_bm25_tokens() -> None:
    cfg = SparseConfig()
    # Stop words ("the", "of") are dropped, the rest counted with repeats.
    assert mean_length(cfg, ["the rotation of keys keys"]) == pytest.approx(3.0, abs=1e-3)
    assert mean_length(cfg, ["alpha beta", "gamma delta epsilon zeta"]) == pytest.approx(
        3.0, abs=1e-3
    )


def test_convex_combines_min_max_normalised_scores() -> None:
    dense = [StoredHit("a", 0.9, {}), StoredHit("b", 0.7, {}), StoredHit("c", 0.5, {})]
    sparse = [StoredHit("c", 12.0, {}), StoredHit("d", 6.0, {}), StoredHit("a", 2.0, {})]
    fused = convex(dense, sparse, alpha=0.5, limit=4)
    scores = {h.id: round(h.score, 6) for h in fused}
    assert scores == {"a": 0.5, "b": 0.25, "c": 0.5, "d": 0.2}
    assert [h.id for h in fused] == ["a", "c", "b", "d"]  # the tie keeps the dense order
    assert [h.id for h in convex(dense, sparse, alpha=1.0, limit=2)] == ["a", "b"]


# --- the choice on folds ----------------------------------------------------------------------


def _scores(**per_mode: list[float]) -> list[ModeScores]:
    by_label = {c.label: c for c in grid()}
    return [ModeScores(by_label[k], np.array(v), np.array(v)) for k, v in per_mode.items()]


def test_choose_keeps_dense_when_it_is_best_or_tied() -> None:
    result = choose("kb", _scores(dense=[1.0, 0.5] * 10, dbsf=[1.0, 0.5] * 10))
    assert result.chosen.mode == "dense" and result.reason == "dense won on the folds"


def test_choose_picks_a_mode_that_beats_dense_out_of_sample() -> None:
    rng = np.random.default_rng(1)
    dense = rng.uniform(0.2, 0.6, 60)
    result = choose("kb", _scores(dense=list(dense), dbsf=list(dense + 0.1)))
    assert result.chosen.label == "dbsf" and result.picks == ["dbsf"] * 5
    assert np.allclose(result.held_out, dense + 0.1)
    summary = result.summary()
    assert summary["chosen"] == "dbsf" and summary["modes"]["dbsf"]["picked_in_folds"] == 5
    low = summary["held_out_vs_dense_ndcg@10"][1]
    assert low > 0


def test_choose_falls_back_to_dense_when_the_pick_does_not_hold_out() -> None:
    # rrf wins one query outright and loses a little on every other: on the training queries
    # of every fold that hold the win it looks best, yet on held-out queries it loses.
    dense = [0.0] + [0.5] * 19
    rrf = [1.0] + [0.45] * 19
    scores = _scores(dense=dense, **{"rrf k=2": rrf})
    result = choose("kb", scores, folds=4)
    assert result.chosen.mode == "dense"
    assert "dense kept" in result.reason


def test_load_judged_reads_beir_and_refuses_no_judged_data(tmp_path: Path) -> None:
    q, r = _judged(tmp_path)
    judged = load_judged(q, r)
    assert judged.relevant["q1"] == {"hmac"} and len(judged.queries) == 7
    r.write_text("query-id\tcorpus-id\tscore\nother\thmac\t1\nq1\tcopy\t0\n")
    with pytest.raises(TuneError, match="no judged data"):
        load_judged(q, r)
    r.write_text("q1\thmac\n")
    with pytest.raises(TuneError, match="expected query-id, corpus-id and score"):
        load_judged(q, r)
    q.write_text("not json\n")
    with pytest.raises(TuneError, match="not JSON lines"):
        load_judged(q, r)


# --- end to end: the default, the measurement, the CLI, what search does after ------------------


def test_new_collection_is_dense_with_measured_bm25_length(tmp_path: Path, embedder) -> None:
    cfg = RetrievalConfig(home=tmp_path, store=StoreConfig(path=str(tmp_path / "edge")))
    r = Retriever(cfg, embedder=embedder)
    try:
        r.ingest([str(_docs(tmp_path))], "kb")
        meta = r.collection_meta("kb")
        assert meta.mode == "dense" and r.resolve_mode("kb") == "dense"
        first = meta.sparse.avg_len
        assert first is not None and 10 < first < 400
        # A later ingest keeps the length every stored vector was encoded with.
        extra = tmp_path / "more"
        extra.mkdir()
        (extra / "short.md").write_text("# Short\n\nA tiny page.\n")
        r.ingest([str(extra)], "kb")
        r.forget_meta("kb")
        assert r.collection_meta("kb").sparse.avg_len == first
        # The config's mode overrides the collection's; the query's overrides both.
        forced = Retriever(cfg.model_copy(update={"search": SearchConfig(mode="sparse")}),
                           embedder=embedder, store=r.store)  # fmt: skip
        assert forced.resolve_mode("kb") == "sparse"
        assert forced.resolve_mode("kb", "convex") == "convex"
        hits = r.search_sync("kb", "keyed hashing with a secret key", 3, mode="convex")
        assert Path(hits[0].source).stem == "hmac" and 0 <= hits[-1].score <= hits[0].score <= 1
    finally:
        r.close()


def test_tune_records_the_mode_search_then_uses(tmp_path: Path, embedder) -> None:
    from evals.cli import retrieval_app as app

    store = StoreConfig(path=str(tmp_path / "edge"))
    r = Retriever(RetrievalConfig(home=tmp_path, store=store), embedder=embedder)
    r.ingest([str(_docs(tmp_path))], "kb")
    r.close()
    q, qrels = _judged(tmp_path)
    runner = CliRunner()
    args = ["tune", "kb", "--queries", str(q), "--qrels", str(qrels), "--store-path", store.path,
            "--folds", "3"]  # fmt: skip
    out = tmp_path / "tune.json"
    res = runner.invoke(app, [*args, "--dry-run", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "would record mode" in res.output and "7 judged queries" in res.output
    summary = json.loads(out.read_text())
    assert set(summary["modes"]) == {c.label for c in grid()}
    assert summary["modes"]["dense"]["ndcg@10"][0] > 0.5  # the queries do find their pages
    r = Retriever(RetrievalConfig(home=tmp_path, store=store), embedder=embedder)
    assert r.collection_meta("kb").tuning is None  # a dry run records nothing
    r.close()

    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    r = Retriever(RetrievalConfig(home=tmp_path, store=store), embedder=embedder)
    try:
        meta = r.collection_meta("kb")
        assert meta.tuning is not None and meta.tuning["chosen"] in summary["modes"]
        chosen = next(c for c in grid() if c.label == meta.tuning["chosen"])
        assert meta.mode == chosen.mode and r.resolve_mode("kb") == chosen.mode
        if chosen.mode == "rrf":
            assert (meta.rrf_k, meta.weights) == (chosen.rrf_k, chosen.weights)
        # Never below dense beyond its interval.
        assert meta.tuning["modes"][chosen.label]["vs_dense_ndcg@10"][2] >= 0
    finally:
        r.close()

    # Judged ids that name no document of the collection, and queries with no judgement.
    _judged(tmp_path, {k: "missing-" + v for k, v in QRELS.items()})
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "no judged document was found" in res.output
    qrels.write_text("query-id\tcorpus-id\tscore\n")
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "no judged data" in res.output
    res = runner.invoke(app, ["tune", "nope", *args[2:]])
    assert res.exit_code == 2 and "no judged data" in res.output


def test_candidate_records_what_search_reads() -> None:
    rrf = Candidate("rrf k=10 w=2:1", "rrf", rrf_k=10, weights=(2.0, 1.0))
    assert rrf.recorded() == {"mode": "rrf", "rrf_k": 10, "weights": (2.0, 1.0)}
    assert Candidate("convex a=0.7", "convex", alpha=0.7).recorded() == {
        "mode": "convex",
        "alpha": 0.7,
    }
    assert grid()[0].mode == "dense"
