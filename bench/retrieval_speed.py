"""Retrieval speed, each target measured against a baseline in the same run:

1. ingest throughput (the whole pipeline: load, chunk, embed, BM25, upsert, bookkeeping) vs bare
   embedding of the same chunk texts with the same model (target ratio >= 0.95);
2. query embedding on ONNX Runtime vs PyTorch (same vectors), the query cache's hit vs miss;
3. store query latency on the embedded engine (Qdrant Edge) at 100k chunks: dense, BM25,
   hybrid RRF, filtered (target p50 <= 5 ms, query embedding apart), memory and disk, and the
   alias switch under concurrent searches (target < 100 ms, no failed search);
4. search end to end through a gateway process, query embedding included (target p50 <= 10
   ms), against the same searches in process.

The 100k store uses synthetic unit vectors (384-d) and synthetic BM25 vectors: embedding 100k
real chunks on a 2-core CPU would take about an hour. Query latency on HNSW depends on the
vector count and dimension, not on where the vectors came from (random data is the harder case
for HNSW). Usage: python bench/retrieval_speed.py [--points 100000] [--docs DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PY_DOCS = Path("/usr/share/doc/python3.11/html/_sources/library")
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "retrieval" / "fixtures" / "pydocs"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def pick_docs(src: Path, limit_bytes: int) -> list[Path]:
    files = sorted(p for p in src.rglob("*") if p.suffix == ".txt" or p.suffix == ".rst")
    rnd = random.Random(7)
    rnd.shuffle(files)
    out, total = [], 0
    for p in files:
        size = p.stat().st_size
        if 2_000 < size < 40_000 and total + size <= limit_bytes:
            out.append(p)
            total += size
    return out


def bench_ingest(docs: list[Path], tmp: Path, rounds: int) -> dict[str, object]:
    from retrieval import EmbedderConfig, RetrievalConfig, Retriever, StoreConfig
    from retrieval._chunking import chunk_document
    from retrieval._embedders import SentenceTransformerEmbedder
    from retrieval._loaders import load_document

    corpus = tmp / "corpus"
    corpus.mkdir()
    for p in docs:
        name = p.name.removesuffix(".txt")
        shutil.copy(p, corpus / name)
    embedder = SentenceTransformerEmbedder(EmbedderConfig())
    texts: list[str] = []
    for p in sorted(corpus.iterdir()):
        doc = load_document(p, p.read_bytes())
        texts += [c.embed_text for c in chunk_document(doc, embedder.count_tokens, 254, 32)]
    embedder.embed_documents(texts)  # warm-up: the first pass pays one-off kernel set-up

    def bare() -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        embedder.embed_documents(texts)
        return time.perf_counter() - w, time.process_time() - c

    def ingest(r: int) -> tuple[float, float]:
        cfg = RetrievalConfig(store=StoreConfig(path=str(tmp / f"edge{r}")))
        w, c = time.perf_counter(), time.process_time()
        retriever = Retriever(cfg, embedder=embedder)
        report = retriever.ingest([str(corpus)], "speed")
        retriever.close()
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        assert report.chunks_embedded == len(texts), (report.chunks_embedded, len(texts))
        return wall, cpu

    rows = []
    for r in range(rounds):
        # ABBA order cancels a steady drift in machine load (other processes share the CPU)
        if r % 2 == 0:
            b, i = bare(), ingest(r)
        else:
            i, b = ingest(r), bare()
        n = len(texts)
        rows.append((n / b[0], n / i[0], n / b[1], n / i[1]))
        print(
            f"  round {r + 1}: wall: bare {rows[-1][0]:.1f}, ingest {rows[-1][1]:.1f} chunks/s; "
            f"per CPU-second: bare {rows[-1][2]:.2f}, ingest {rows[-1][3]:.2f}",
            flush=True,
        )
    wall_ratio = statistics.median(r[1] / r[0] for r in rows)
    cpu_ratio = statistics.median(r[3] / r[2] for r in rows)
    return {
        "files": len(docs),
        "chunks": len(texts),
        "bare_chunks_per_wall_s": [round(r[0], 2) for r in rows],
        "ingest_chunks_per_wall_s": [round(r[1], 2) for r in rows],
        "bare_chunks_per_cpu_s": [round(r[2], 3) for r in rows],
        "ingest_chunks_per_cpu_s": [round(r[3], 3) for r in rows],
        "ratio_wall_median": round(wall_ratio, 3),
        "ratio_cpu_median": round(cpu_ratio, 3),
    }


def bench_store(n: int, tmp: Path, queries: int) -> dict[str, object]:
    import qdrant_edge as qe

    from common import DEFAULT_EMBEDDING_MODEL as DEFAULT_MODEL
    from retrieval import CollectionMeta
    from retrieval._edge_store import EdgeStore
    from retrieval._filters import ComparisonFilter
    from retrieval._sparse import Sparse
    from retrieval._store import PointData, QueryPlan

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30_000)]
    zipf = rng.zipf(1.3, size=4_000_000) % len(words)
    root = tmp / "edge100k"
    rss0 = rss_mb()
    store = EdgeStore(root)
    # Recorded as MiniLM's so that real queries can search it through the gateway (phase 4).
    store.create_collection("big@v1", CollectionMeta(model=DEFAULT_MODEL, dim=384))
    t0 = time.perf_counter()
    batch = 1000
    pos = 0
    for start in range(0, n, batch):
        vecs = rng.standard_normal((batch, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        pts = []
        for i in range(batch):
            terms = zipf[pos : pos + 120]
            pos = (pos + 120) % (len(zipf) - 200)
            ids, counts = np.unique(terms, return_counts=True)
            values = (counts * 2.2 / (counts + 1.2)).astype(float).tolist()
            text = " ".join(words[t] for t in terms)[:900]
            pid = f"00000000-0000-4000-8000-{start + i:012d}"
            payload = {
                "source": f"/docs/file{(start + i) // 20}.md",
                "path": f"file{(start + i) // 20}.md",
                "filename": f"file{(start + i) // 20}.md",
                "title": "Synthetic",
                "heading": "Synthetic > Section",
                "headings": ["Synthetic", "Section"],
                "doc_type": "markdown",
                "tags": ["bench"],
                "fingerprint": "f" * 64,
                "chunk_count": 20,
                "position": (start + i) % 20,
                "page": None,
                "text": text,
            }
            pts.append(PointData(pid, vecs[i].tolist(), Sparse(ids.tolist(), values), payload))
        store.upsert("big@v1", pts)
    upsert_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    store.optimize("big@v1")
    optimize_s = time.perf_counter() - t1
    rss_built = rss_mb()
    store.close()
    disk = du_mb(root / "big@v1")
    disk_wal = du_mb(root / "big@v1" / "shard" / "wal")
    rss1 = rss_mb()
    store = EdgeStore(root)
    store.count("big@v1")  # opens the shard
    rss_loaded = rss_mb() - rss1

    def lat(plan_factory) -> dict[str, float]:
        times = []
        for _ in range(queries):
            plan = plan_factory()
            t = time.perf_counter()
            store.query("big@v1", plan)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        return {
            "p50_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
        }

    def dense() -> list[float]:
        v = rng.standard_normal(384).astype(np.float32)
        return (v / np.linalg.norm(v)).tolist()

    def sparse() -> Sparse:
        t = np.unique(rng.choice(zipf[:100000], size=8))
        return Sparse(t.tolist(), [1.0] * len(t))

    flt = ComparisonFilter(type="eq", key="source", value="/docs/file42.md")
    for _ in range(20):  # warm caches
        store.query("big@v1", QueryPlan(mode="dense", limit=10, dense=dense()))
    results = {
        "dense": lat(lambda: QueryPlan(mode="dense", limit=10, dense=dense())),
        "bm25": lat(lambda: QueryPlan(mode="sparse", limit=10, sparse=sparse())),
        "hybrid_rrf": lat(lambda: QueryPlan(mode="rrf", limit=10, dense=dense(), sparse=sparse())),
        "dense_filtered_source": lat(
            lambda: QueryPlan(mode="dense", limit=10, dense=dense(), filter=flt)
        ),
    }
    info_points = store.count("big@v1")
    switch = bench_alias_switch(store, rng, dense, queries)
    store.close()
    del qe
    return {
        "points": info_points,
        "upsert_points_per_s": round(n / upsert_s, 1),
        "optimize_s": round(optimize_s, 1),
        "query": results,
        "disk_mb": round(disk, 1),
        "disk_wal_mb": round(disk_wal, 1),
        "rss_growth_while_building_mb": round(rss_built - rss0, 1),
        "rss_after_reopen_mb": round(rss_loaded, 1),
        "alias_switch": switch,
    }


def bench_alias_switch(store: Any, rng: Any, dense: Any, queries: int) -> dict[str, object]:
    """Four threads search the alias ``big`` while it switches between the 100k version and a
    small one 50 times: the switch time, the searches that failed (the target is none), and
    the cost of resolving an alias on each search (alias p50 against the collection's own)."""
    import threading

    from common import DEFAULT_EMBEDDING_MODEL as DEFAULT_MODEL
    from retrieval import CollectionMeta, switch_alias
    from retrieval._sparse import Sparse
    from retrieval._store import PointData, QueryPlan

    store.create_collection("big@v2", CollectionMeta(model=DEFAULT_MODEL, dim=384))
    vecs = rng.standard_normal((2000, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store.upsert("big@v2", [
        PointData(f"00000000-0000-4000-9000-{i:012d}", vecs[i].tolist(), Sparse([1], [1.0]),
                  {"source": f"/v2/{i}.md", "text": "v2"})
        for i in range(len(vecs))
    ])  # fmt: skip
    store.optimize("big@v2")
    switch_alias(store, "big", "big@v1")

    def p50(name: str) -> float:
        times = []
        for _ in range(queries):
            plan = QueryPlan(mode="dense", limit=10, dense=dense())
            t = time.perf_counter()
            store.query(name, plan)
            times.append((time.perf_counter() - t) * 1000)
        return round(statistics.median(times), 3)

    direct, through = p50("big@v1"), p50("big")
    done, failed, served = threading.Event(), [0], [0]

    def search() -> None:
        while not done.is_set():
            try:
                if not store.query("big", QueryPlan(mode="dense", limit=10, dense=dense())):
                    failed[0] += 1
                served[0] += 1
            except Exception:
                failed[0] += 1

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    switch_ms = []
    for k in range(50):
        time.sleep(0.01)
        switch_ms.append(switch_alias(store, "big", "big@v2" if k % 2 == 0 else "big@v1") * 1000)
    done.set()
    for t in threads:
        t.join()
    switch_ms.sort()
    return {
        "switches": len(switch_ms),
        "switch_p50_ms": round(statistics.median(switch_ms), 3),
        "switch_max_ms": round(switch_ms[-1], 3),
        "searches_during_switches": served[0],
        "failed_searches": failed[0],
        "dense_p50_ms_direct": direct,
        "dense_p50_ms_through_alias": through,
    }


def _questions(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    subjects = [
        "the gateway",
        "a replica",
        "the vector store",
        "an API key",
        "the eval gate",
        "a prompt label",
        "the canary",
        "the embedding model",
        "a collection alias",
    ]
    asks = ["How do I configure", "Why does", "When should I restart", "What limits apply to",
            "How is latency measured for", "Where are the logs of", "Who can rotate"]  # fmt: skip
    return [f"{rng.choice(asks)} {rng.choice(subjects)} in setup {i}?" for i in range(n)]


def bench_gateway_search(root: Path, tmp: Path, queries: int) -> dict[str, object]:
    """End to end through a real gateway process (`llmops serve`): `POST
    /v1/vector_stores/big/search`, query embedding included, over the 100k store of phase 3,
    new questions (cache misses) and then the same ones again (cache hits). Baseline in the
    same run: the same searches in process (`Retriever.search_sync`, no cache)."""
    import httpx

    from bench.gateway_overhead import free_port, gateway_process
    from retrieval import EmbedderConfig, RetrievalConfig, Retriever, StoreConfig

    fresh, again = _questions(queries, 1), _questions(queries, 2)
    store = StoreConfig(path=str(root))
    r = Retriever(RetrievalConfig(home=tmp, store=store,
                                  embedder=EmbedderConfig(query_cache_size=0)))  # fmt: skip
    r.search_sync("big", "warm up", 10)
    in_process = []
    for q in fresh:
        t = time.perf_counter()
        r.search_sync("big", q, 10)
        in_process.append((time.perf_counter() - t) * 1000)
    r.close()  # the embedded engine: one process holds a collection
    cfg: dict[str, Any] = {
        "server": {"port": free_port()}, "auth": {"enabled": False}, "models": [],
        "prompts": None, "retrieval": {"home": str(tmp), "store": {"path": str(root)}},
    }  # fmt: skip
    # The first search loads the embedder in the gateway: a generous timeout, untimed.
    with gateway_process(cfg, tmp, "") as (url, _pid), httpx.Client(base_url=url, timeout=120) as c:
        path = "/v1/vector_stores/big/search"

        def timed(qs: list[str]) -> list[float]:
            out = []
            for q in qs:
                t = time.perf_counter()
                resp = c.post(path, json={"query": q, "max_num_results": 10})
                out.append((time.perf_counter() - t) * 1000)
                assert resp.status_code == 200 and resp.json()["data"], resp.text
            return out

        timed(["warm up"] * 5)
        cold = timed(again)
        hot = timed(again)
    p50 = statistics.median
    return {
        "queries": queries,
        "in_process_p50_ms": round(p50(in_process), 2),
        "gateway_p50_ms": round(p50(cold), 2),
        "gateway_repeated_p50_ms": round(p50(hot), 2),
        "gateway_over_in_process": round(p50(cold) / p50(in_process), 2),
    }


def bench_query_embedding(queries: int) -> dict[str, float]:
    from retrieval import EmbedderConfig, SparseConfig
    from retrieval._embedders import CachedQueryEmbedder, SentenceTransformerEmbedder
    from retrieval._sparse import Bm25Encoder

    emb = SentenceTransformerEmbedder(EmbedderConfig())  # queries on ONNX Runtime
    torch_emb = SentenceTransformerEmbedder(EmbedderConfig(query_runtime="torch"))
    bm25 = Bm25Encoder(SparseConfig())
    qs = [f"how do I configure logging handlers for module number {i}" for i in range(queries)]
    emb.embed_query(qs[0])
    torch_emb.embed_query(qs[0])
    assert emb.query_runtime == "onnx", "no ONNX query encoder: see the warning above"
    dense_t, torch_t, sparse_t, cos = [], [], [], []
    for q in qs:  # the two runtimes alternate, so both meet the same machine load
        t = time.perf_counter()
        a = emb.embed_query(q)
        dense_t.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        b = torch_emb.embed_query(q)
        torch_t.append((time.perf_counter() - t) * 1000)
        cos.append(float(np.dot(a, b)))
        t = time.perf_counter()
        bm25.query(q)
        sparse_t.append((time.perf_counter() - t) * 1000)
    cached = CachedQueryEmbedder(emb, len(qs))
    miss_t, hit_t = [], []
    for times in (miss_t, hit_t):  # first pass fills the cache, the second hits it
        for q in qs:
            t = time.perf_counter()
            cached.embed_query(q)
            times.append((time.perf_counter() - t) * 1000)
    miss, hit = statistics.median(miss_t), statistics.median(hit_t)
    return {
        "dense_query_embedding_p50_ms": round(statistics.median(dense_t), 2),
        "dense_query_embedding_torch_p50_ms": round(statistics.median(torch_t), 2),
        "torch_over_onnx": round(statistics.median(torch_t) / statistics.median(dense_t), 2),
        "onnx_vs_torch_min_cosine": round(min(cos), 7),
        "bm25_query_encoding_p50_ms": round(statistics.median(sparse_t), 3),
        "query_cache_miss_p50_ms": round(miss, 2),
        "query_cache_hit_p50_ms": round(hit, 4),
        "query_cache_miss_over_hit": round(miss / hit, 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--docs", type=Path, default=PY_DOCS if PY_DOCS.is_dir() else FIXTURES)
    ap.add_argument("--docs-bytes", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "out" / "retrieval_speed.json"
    )
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="retrieval-speed-") as d:
        tmp = Path(d)
        print(f"[1/4] ingest vs bare embedding ({args.docs})")
        out["ingest"] = bench_ingest(pick_docs(args.docs, args.docs_bytes), tmp, args.rounds)
        print(json.dumps(out["ingest"], indent=2), flush=True)
        print("[2/4] query embedding")
        out["query_embedding"] = bench_query_embedding(50)
        print(json.dumps(out["query_embedding"], indent=2), flush=True)
        print(f"[3/4] Qdrant Edge store at {args.points} points")
        out["store"] = bench_store(args.points, tmp, args.queries)
        print(json.dumps(out["store"], indent=2))
        print("[4/4] search through the gateway, query embedding included")
        out["gateway_search"] = bench_gateway_search(tmp / "edge100k", tmp, min(args.queries, 200))
        print(json.dumps(out["gateway_search"], indent=2))
    ing = out["ingest"]
    st = out["store"]
    assert isinstance(ing, dict) and isinstance(st, dict)
    hybrid = st["query"]["hybrid_rrf"]["p50_ms"]  # type: ignore[index]
    dense = st["query"]["dense"]["p50_ms"]  # type: ignore[index]
    sw = st["alias_switch"]
    gs = out["gateway_search"]
    assert isinstance(sw, dict) and isinstance(gs, dict)
    print(
        f"\nSUMMARY ingest/bare throughput ratio: wall {ing['ratio_wall_median']}, "
        f"CPU {ing['ratio_cpu_median']} (target >= 0.95); "
        f"store p50 dense {dense} ms, hybrid {hybrid} ms (target <= 5 ms); "
        f"disk {st['disk_mb']} MB, RSS after reopen {st['rss_after_reopen_mb']} MB "
        f"per {st['points']} chunks; alias switch max {sw['switch_max_ms']} ms (target < 100), "
        f"{sw['failed_searches']} of {sw['searches_during_switches']} searches failed during "
        f"{sw['switches']} switches; through the gateway p50 {gs['gateway_p50_ms']} ms with "
        f"embedding (target <= 10), {gs['gateway_repeated_p50_ms']} ms repeated, in process "
        f"{gs['in_process_p50_ms']} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
