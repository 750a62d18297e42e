"""Model variants: gateway CPU per request with an alias over two variants against a plain
model, the split's accuracy over 20,000 simulated users, and the guard's time from a fault to
weight 0.

CPU comes from the gateway benchmark's harness (``bench/gateway_overhead.py``): nginx as a
fixed-body upstream, wrk posting chat bodies at concurrency 16, CPU from /proc/PID/stat divided
by requests served; the two gateways alternate round by round. The split and the guard run in
process: the split through the gateway's own ``VariantGroup``, the guard through its
``VariantRouter`` fed failed requests on a simulated clock (a check every window / 6).

    python -m bench.variants_overhead [--duration 6] [--rounds 3] [--concurrency 16]

Targets: variants add <= 0.03 ms CPU per request; the split within 1 point of the weights;
a fault reaches weight 0 within 2 guard windows. Writes ``bench/out/variants.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.gateway_overhead import (
    MODEL,
    ROOT,
    STREAM_MODEL,
    Variant,
    alternating_rounds,
    chat_request,
    free_port,
    gateway_config,
    gateway_process,
    missing_tools,
    nginx_upstream,
    run_wrk,
)

TARGET_MS = 0.03


def _variants(json_url: str, sse_url: str) -> dict[str, Variant]:
    split = [
        {"name": "bench-v1", "served_name": MODEL, "upstreams": [{"url": json_url}]},
        {"name": "bench-v2", "served_name": MODEL, "upstreams": [{"url": json_url}]},
        {"name": MODEL, "variants": [{"model": "bench-v1", "weight": 50},
                                     {"model": "bench-v2", "weight": 50}],
         "guard": {"window_s": 60}},
        {"name": STREAM_MODEL, "upstreams": [{"url": sse_url}]},
    ]  # fmt: skip
    return {
        "off": Variant("off", "plain model"),
        "variants": Variant(
            "variants", "alias over 2 variants, guard on", config={"models": split}
        ),
    }


def split_accuracy(users: int = 20_000) -> float:
    """The largest gap, in points, between a variant's share of users and its weight."""
    from gateway.variants import VariantGroup

    g = VariantGroup("chat", ("a", "b", "c"), [90, 5, 5], "a")
    counts = dict.fromkeys(g.models, 0)
    for i in range(users):
        counts[g.choose(f"user-{i}") or "a"] += 1
    return max(abs(100 * counts[m] / users - w) for m, w in zip(g.models, g.weights, strict=True))


def breach_to_zero(window_s: float = 60.0, rps: float = 20.0) -> float:
    """Guard windows from the first failing request to weight 0 (simulated clock)."""
    from prometheus_client import CollectorRegistry

    from gateway import GatewayConfig
    from gateway.variants import VariantRouter
    from gateway.variants._store import FileStateStore

    cfg = GatewayConfig(models=[
        {"name": "a", "upstreams": [{"url": "http://127.0.0.1:1"}]},
        {"name": "b", "upstreams": [{"url": "http://127.0.0.1:2"}]},
        {"name": "chat", "variants": [{"model": "a", "weight": 50}, {"model": "b", "weight": 50}],
         "guard": {"window_s": window_s}},
    ])  # fmt: skip

    async def run(tmp: Path) -> float:
        router = VariantRouter(cfg, {"a": "a", "b": "b", "chat": "chat"},
                               FileStateStore(tmp / "s.json"), CollectorRegistry())  # fmt: skip
        a = router.aliases["chat"]
        t, fault_at, step = 1_000_000.0, 1_000_000.0 + window_s, 1.0 / rps
        next_check = t
        while t < fault_at + 10 * window_s:
            variant = a.group.choose(None) or "a"
            error = variant == "b" and t >= fault_at
            a.window.record(variant, t, ok=not error, error=error, latency_s=0.05)
            if t >= next_check:
                await router.sync(now=t)
                next_check = t + (a.guard.interval_s if a.guard else 10)
                if a.state.weights.get("b") == 0:
                    return (t - fault_at) / window_s
            t += step
        return float("inf")

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(Path(tmp)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    gap = split_accuracy()
    windows = breach_to_zero()
    print(f"split: largest gap from the weights {gap:.2f} points over 20000 users")
    print(f"guard: weight 0 after {windows:.2f} windows from the first failure")
    med: dict[str, float] = {}
    missing = missing_tools("nginx", "wrk")
    if missing:
        print(
            f"skip the CPU part: {', '.join(missing)} missing (bash scripts/system_deps.sh bench)"
        )
    else:
        with tempfile.TemporaryDirectory(prefix="llmops-bench-variants-") as tmp, ExitStack() as st:
            work = Path(tmp)
            json_url, sse_url = st.enter_context(nginx_upstream(work))
            body_file = work / "body.json"
            body_file.write_bytes(orjson.dumps(chat_request(MODEL, False)))
            gateways: dict[str, tuple[str, int]] = {}
            for name, v in _variants(json_url, sse_url).items():
                d = work / name
                d.mkdir()
                cfg: dict[str, Any] = gateway_config(free_port(), json_url, sse_url, v)
                cfg["variants"] = {"state_file": str(d / "state.json"),
                                   "events_file": str(d / "events.jsonl")}  # fmt: skip
                gateways[name] = st.enter_context(gateway_process(cfg, d, ""))
                url, pid = gateways[name]
                run_wrk(url + "/v1/chat/completions", body_file, args.concurrency, args.warmup, pid)
            cpu = alternating_rounds(gateways, body_file, args.concurrency, args.duration,
                                     args.rounds)  # fmt: skip
        med = {n: statistics.median(c) for n, c in cpu.items()}
    lines = ["# Model variants (bench/variants_overhead.py)", "",
             "| measure | result | target |", "|---|---|---|"]  # fmt: skip
    if med:
        added = med["variants"] - med["off"]
        lines.append(f"| CPU per request, plain / variants | {med['off']:.3f} / "
                     f"{med['variants']:.3f} ms ({added:+.3f} ms, ratio "
                     f"{med['variants'] / med['off']:.3f}) | <= +{TARGET_MS} ms |")  # fmt: skip
    lines.append(f"| split over 20000 users (90/5/5) | largest gap {gap:.2f} points | <= 1 |")
    lines.append(f"| fault to weight 0 | {windows:.2f} guard windows | <= 2 |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "variants.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
