"""Prefix-aware routing on two real vLLM CPU engines: vLLM's own prefix-cache counters and
TTFT through the gateway, prefix routing against least-outstanding, in one run.

Two SmolLM2 engines with vLLM's automatic prefix caching (on by default) and a small KV cache
each; one gateway process with two names for the same two engines, ``lo`` (least outstanding)
and ``px`` (``routing: prefix``). The workload is llm-d's shared-prefix shape sized for
``max_model_len`` 2048: 20 groups of prompts sharing a system prefix of about 1,700 tokens,
about 34k tokens in all, where one engine's 1 GiB cache holds about 23k (SmolLM2 in float32
keeps 45 KiB per token): split in two by prefix they fit, sent to both engines they do not.
Each strategy gets its own groups (no prefix is shared between the two phases), sent at
concurrency 2 in a shuffled order. The hit rate is the change of
``vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total`` summed over both engines;
TTFT is the first streamed token through the gateway. Two engines share 2 cores here, so the
hit rate is the figure to read first.

    python -m bench.prefix_routing_engines [--groups 20] [--per-group 4] [--kv-gib 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

from bench.gateway_overhead import API_KEY, ROOT, free_port, gateway_process

NEEDS_ENGINE = True
SERVED = "smollm2"
_COUNTER = re.compile(rb"^(vllm:prefix_cache_(?:hits|queries)_total)(?:\{[^}]*\})?\s+([0-9.eE+-]+)",
                      re.M)  # fmt: skip


def system_prompt(phase: str, group: int, words: int) -> str:
    rng = random.Random(f"{phase}-{group}")
    vocab = ("account balance transfer card limit fee refund statement branch loan rate deposit "
             "overdraft policy customer review").split()  # fmt: skip
    body = " ".join(rng.choice(vocab) for _ in range(words))
    return f"You are assistant {phase}-{group} of a bank. Policy notes: {body}."


async def counters(session: aiohttp.ClientSession, urls: list[str]) -> tuple[float, float]:
    hits = queries = 0.0
    for url in urls:
        async with session.get(url + "/metrics") as r:
            body = await r.read()
        for name, value in _COUNTER.findall(body):
            if name.endswith(b"hits_total"):
                hits += float(value)
            else:
                queries += float(value)
    return hits, queries


async def phase(session: aiohttp.ClientSession, gw: str, model: str, prompts: list[list[dict]],
                concurrency: int) -> list[float]:  # fmt: skip
    """TTFT of each request (seconds), ``concurrency`` at a time."""
    queue: asyncio.Queue[list[dict]] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    ttfts: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            messages = queue.get_nowait()
            body = {"model": model, "messages": messages, "max_tokens": 4, "stream": True,
                    "temperature": 0}  # fmt: skip
            t0 = time.perf_counter()
            auth = {"authorization": f"Bearer {API_KEY}"}
            async with session.post(gw + "/v1/chat/completions", json=body, headers=auth) as r:
                r.raise_for_status()
                first = None
                async for line in r.content:
                    if first is None and line.startswith(b"data: {"):
                        first = time.perf_counter() - t0
                ttfts.append(first if first is not None else float("nan"))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ttfts


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] if len(xs) > 1 else xs[0]


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from engine import EngineManager, EngineSpec

    spec = EngineSpec(max_model_len=2048, kv_cache_gib=args.kv_gib, startup_timeout_s=900)
    managers = [EngineManager(name=f"prefix-bench-{i}", served_name=SERVED, spec=spec)
                for i in range(2)]  # fmt: skip
    urls = list(await asyncio.gather(*(m.start() for m in managers)))
    results: dict[str, Any] = {"engines": urls, "kv_cache_gib": args.kv_gib}
    try:
        from gateway._config import hash_key

        ups = [{"url": u} for u in urls]
        cfg = {
            "server": {"host": "127.0.0.1", "port": free_port(), "request_timeout_s": 300},
            "auth": {"enabled": True, "keys": [{"name": "bench", "sha256": hash_key(API_KEY)}]},
            "models": [
                {"name": "lo", "served_name": SERVED, "upstreams": ups},
                {"name": "px", "served_name": SERVED, "upstreams": ups, "routing": "prefix"},
            ],
            "prompts": None,
        }
        with ExitStack() as st:
            gw, _pid = st.enter_context(gateway_process(cfg, work, ""))
            async with aiohttp.ClientSession() as session:
                for model in ("lo", "px"):
                    prompts = [
                        [{"role": "system", "content": system_prompt(model, g, args.words)},
                         {"role": "user", "content": f"Question {i}: what is my {g} limit?"}]
                        for g in range(args.groups) for i in range(args.per_group)
                    ]  # fmt: skip
                    random.Random(7).shuffle(prompts)
                    h0, q0 = await counters(session, urls)
                    ttft = await phase(session, gw, model, prompts, args.concurrency)
                    h1, q1 = await counters(session, urls)
                    hit = (h1 - h0) / (q1 - q0) if q1 > q0 else 0.0
                    results[model] = {"hit_rate": round(hit, 4), "requests": len(ttft),
                                      "ttft_p50_s": round(pct(ttft, 50), 3),
                                      "ttft_p90_s": round(pct(ttft, 90), 3),
                                      "prompt_tokens_queried": q1 - q0}  # fmt: skip
                    p50, p90 = pct(ttft, 50), pct(ttft, 90)
                    print(f"{model}: hit rate {hit:.1%}, TTFT p50 {p50:.2f} s, p90 {p90:.2f} s "
                          f"over {len(ttft)} requests", flush=True)  # fmt: skip
    finally:
        await asyncio.gather(*(m.stop() for m in managers), return_exceptions=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--per-group", type=int, default=4)
    ap.add_argument("--words", type=int, default=1500, help="system prompt words per group")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--kv-gib", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llmops-bench-prefix-engines-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    lo, px = results["lo"], results["px"]
    ratio = lo["ttft_p90_s"] / px["ttft_p90_s"] if px["ttft_p90_s"] else float("inf")
    results["ttft_p90_ratio_lo_over_prefix"] = round(ratio, 2)
    print(f"\nSUMMARY two vLLM CPU engines: prefix-cache hit rate {px['hit_rate']:.1%} with prefix "
          f"routing vs {lo['hit_rate']:.1%} least-outstanding; TTFT p90 {px['ttft_p90_s']:.2f} "
          f"vs {lo['ttft_p90_s']:.2f} s (least-outstanding / prefix = {ratio:.2f})")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prefix_routing_engines.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
