"""Spend accounting: gateway CPU per request with the model priced (cost charged, metrics, the
ledger in memory or pushed to Redis) against the same model unpriced, in one run.

The gateway benchmark's harness (``bench/gateway_overhead.py``): nginx as a fixed-body
upstream that answers usage, wrk posting chat bodies at concurrency 16, CPU from
/proc/PID/stat divided by requests served; the gateways alternate round by round.

    python -m bench.spend_overhead [--duration 6] [--rounds 3] [--concurrency 16]

Target: accounting adds <= 0.03 ms CPU per request, in memory and on Redis. Writes
``bench/out/spend.md``. Needs nginx, wrk and redis-server (``bash scripts/system_deps.sh
bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.gateway_overhead import (
    API_KEY,
    MODEL,
    ROOT,
    STREAM_MODEL,
    Variant,
    alternating_rounds,
    chat_post,
    chat_request,
    cpu_seconds,
    free_port,
    gateway_config,
    gateway_process,
    missing_tools,
    nginx_upstream,
    run_wrk,
)

TARGET_MS = 0.03
ADMIN_KEY = "sk-bench-spend-admin"
PRICE = {"input_per_1m": 0.15, "output_per_1m": 0.60}


def _variants(json_url: str, sse_url: str, redis_url: str) -> dict[str, Variant]:
    from gateway._config import hash_key

    priced = [
        {"name": MODEL, "upstreams": [{"url": json_url}], "price": PRICE},
        {"name": STREAM_MODEL, "upstreams": [{"url": sse_url}]},
    ]
    auth = {"enabled": True, "admin_sha256": hash_key(ADMIN_KEY),
            "keys": [{"name": "bench", "sha256": hash_key(API_KEY), "team": "bench"}]}  # fmt: skip
    store = {"url": redis_url, "socket_timeout_s": 2, "connect_timeout_s": 2}
    redis = {"backend": "redis", "redis": store}
    return {
        "off": Variant("off", "unpriced model", config={"auth": auth}),
        "memory": Variant("memory", "priced, ledger in memory",
                          config={"auth": auth, "models": priced}),
        "redis": Variant("redis", "priced, ledger on Redis",
                         config={"auth": auth, "models": priced, "limits": redis}),
    }  # fmt: skip


def _spent(url: str) -> float:
    req = urllib.request.Request(url + "/admin/spend?by=model&since=1h",
                                 headers={"authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        return float(orjson.loads(r.read())["total_usd"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    missing = missing_tools("nginx", "wrk", "redis-server")
    if missing:
        print(f"skip spend_overhead: {', '.join(missing)} missing "
              "(bash scripts/system_deps.sh bench)")  # fmt: skip
        return 0
    spent: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="llmops-bench-spend-") as tmp, ExitStack() as st:
        work = Path(tmp)
        rport = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        st.callback(redis.kill)
        time.sleep(0.5)
        json_url, sse_url = st.enter_context(nginx_upstream(work))
        body_file = work / "body.json"
        body = orjson.dumps(chat_request(MODEL, False))
        body_file.write_bytes(body)
        gateways: dict[str, tuple[str, int]] = {}
        for name, v in _variants(json_url, sse_url, f"redis://127.0.0.1:{rport}/0").items():
            d = work / name
            d.mkdir()
            cfg: dict[str, Any] = gateway_config(free_port(), json_url, sse_url, v)
            gateways[name] = st.enter_context(gateway_process(cfg, d, ""))
            url, pid = gateways[name]
            with urllib.request.urlopen(chat_post(url, body)) as r:
                assert r.status == 200, name
            run_wrk(url + "/v1/chat/completions", body_file, args.concurrency, args.warmup, pid)
        r0 = cpu_seconds(redis.pid)
        cpu = alternating_rounds(gateways, body_file, args.concurrency, args.duration,
                                 args.rounds)  # fmt: skip
        redis_s = cpu_seconds(redis.pid) - r0
        time.sleep(1.5)  # the ledgers' last flush
        for name in ("memory", "redis"):
            spent[name] = _spent(gateways[name][0])
    med = {n: statistics.median(c) for n, c in cpu.items()}
    lines = [
        f"# Spend accounting (bench/spend_overhead.py): gateway CPU per request, concurrency "
        f"{args.concurrency}, median of {args.rounds} rounds x {args.duration:g}s; load avg at "
        f"end {os.getloadavg()[0]:.1f}",
        "",
        "| accounting | CPU ms/request | added ms | ratio | target | ledger total |",
        "|---|---|---|---|---|---|",
        f"| off (unpriced) | {med['off']:.3f} | - | 1.000 | - | - |",
    ]
    ok = True
    for name, title in (("memory", "priced, in memory"), ("redis", "priced, on Redis")):
        added = med[name] - med["off"]
        ok = ok and added <= TARGET_MS
        lines.append(
            f"| {title} | {med[name]:.3f} | {added:+.3f} | {med[name] / med['off']:.3f} | "
            f"<= +{TARGET_MS} {'PASS' if added <= TARGET_MS else 'FAIL'} | "
            f"${spent[name]:.4f} |"
        )
    lines.append(f"\nredis-server's own CPU over all rounds: {redis_s:.2f} s (ledger pushes "
                 "once a second, not per request)")  # fmt: skip
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spend.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
