"""Prefix-aware routing: gateway CPU per request with ``routing: prefix`` against the default
least-outstanding strategy, both over 16 replicas with 4k-token prompts.

The gateway benchmark's harness (``bench/gateway_overhead.py``): nginx as a fixed-body upstream
(16 replica URLs on it, one path prefix each), wrk posting one chat body at concurrency 16, CPU
from /proc/PID/stat divided by requests served; the two gateways alternate round by round. The
body holds a 16,000-character system prompt (about 4,000 tokens) and a short question, so the
prefix strategy hashes 32 blocks, matches them against 16 indexes and refreshes one per request.
Its engine-stats poller scrapes the 16 URLs every second (nginx answers without vLLM series):
that CPU is counted too. Also reported: the memory of the indexes, full.

    python -m bench.prefix_routing_overhead [--duration 6] [--rounds 3] [--concurrency 16]

Target: prefix routing adds <= 0.05 ms CPU per request. Writes ``bench/out/prefix_routing.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import tracemalloc
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.gateway_overhead import (
    MODEL,
    ROOT,
    Variant,
    alternating_rounds,
    free_port,
    gateway_config,
    gateway_process,
    missing_tools,
    nginx_upstream,
    run_wrk,
)

TARGET_MS = 0.05
REPLICAS = 16
SYSTEM = ("Policy for support agents: answer from the account terms, cite the clause, never "
          "promise refunds outside the window, escalate disputes over 500 EUR. ") * 108  # fmt: skip


def body() -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Can I get my card fee back?"},
        ],
        "max_tokens": 64,
    }


def _models(json_url: str, sse_url: str, routing: str) -> list[dict[str, Any]]:
    ups = [{"url": f"{json_url}/r{i}"} for i in range(REPLICAS)]
    return [
        {"name": MODEL, "upstreams": ups, "routing": routing},
        {"name": "bench-stream", "upstreams": [{"url": sse_url}]},
    ]


def index_memory(blocks_per_replica: int = 16384) -> float:
    """MiB held by the 16 indexes when each is full (the default size when vLLM's capacity is
    unknown), measured with tracemalloc."""
    from gateway._prefix_routing import PrefixAware
    from gateway._replicas import Replica
    from gateway._routing_config import RoutingConfig

    s = PrefixAware(RoutingConfig(strategy="prefix"))
    reps = [Replica(model="m", url=f"http://r{i}") for i in range(REPLICAS)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for r in reps:
        s.index(r).add(list(range(hash(r.url), hash(r.url) + blocks_per_replica)))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / (1 << 20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    mem = index_memory()
    print(f"indexes: {mem:.1f} MiB for {REPLICAS} replicas x 16384 blocks")
    med: dict[str, float] = {}
    missing = missing_tools("nginx", "wrk")
    if missing:
        print(
            f"skip the CPU part: {', '.join(missing)} missing (bash scripts/system_deps.sh bench)"
        )
    else:
        with tempfile.TemporaryDirectory(prefix="llmops-bench-prefix-") as tmp, ExitStack() as st:
            work = Path(tmp)
            json_url, sse_url = st.enter_context(nginx_upstream(work))
            body_file = work / "body.json"
            body_file.write_bytes(orjson.dumps(body()))
            gateways: dict[str, tuple[str, int]] = {}
            for name in ("least_outstanding", "prefix"):
                d = work / name
                d.mkdir()
                cfg = gateway_config(free_port(), json_url, sse_url, Variant(name, name))
                cfg["models"] = _models(json_url, sse_url, name)
                gateways[name] = st.enter_context(gateway_process(cfg, d, ""))
                url, pid = gateways[name]
                run_wrk(url + "/v1/chat/completions", body_file, args.concurrency, args.warmup, pid)
            cpu = alternating_rounds(gateways, body_file, args.concurrency, args.duration,
                                     args.rounds)  # fmt: skip
        med = {n: statistics.median(c) for n, c in cpu.items()}
    lines = ["# Prefix-aware routing (bench/prefix_routing_overhead.py)", "",
             "| measure | result | target |", "|---|---|---|"]  # fmt: skip
    if med:
        base, prefix = med["least_outstanding"], med["prefix"]
        added = prefix - base
        verdict = "PASS" if added <= TARGET_MS else "FAIL"
        lines.append(f"| CPU per request, {REPLICAS} replicas, 4k-token prompt: least-outstanding"
                     f" / prefix | {base:.3f} / {prefix:.3f} ms ({added:+.3f} ms, ratio "
                     f"{prefix / base:.3f}) | <= +{TARGET_MS} ms: {verdict} |")  # fmt: skip
    lines.append(f"| index memory, {REPLICAS} replicas x 16384 blocks (full) | {mem:.1f} MiB | "
                 "bounded |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prefix_routing.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
