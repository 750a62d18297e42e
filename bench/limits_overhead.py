"""Gateway CPU per request with rate limiting off, in memory, and in Redis, against targets.

Reuses the gateway benchmark's harness (``bench/gateway_overhead.py``): nginx as a fixed-body
upstream, wrk posting chat bodies with one bearer key, CPU from /proc/PID/stat (utime + stime)
divided by requests served. Three gateway processes run side by side (limits off, in-memory,
Redis-backed; the same key limited on every dimension: requests/min, tokens/min, concurrency,
a daily token budget, plus a team limit, all high enough that nothing is refused), and wrk
runs alternate between them round by round, so machine drift hits all three alike.

    python -m bench.limits_overhead [--duration 6] [--rounds 3] [--concurrency 16]

Targets: in-memory limits add <= 0.1 ms, Redis-backed <= 0.5 ms of gateway CPU per request.
Writes ``bench/out/limits.md`` and ``bench/out/limits.json``. Needs nginx, wrk, redis-server
(``scripts/system_deps.sh bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import orjson

from bench.gateway_overhead import (
    MODEL,
    ROOT,
    Variant,
    chat_post,
    chat_request,
    cpu_seconds,
    free_port,
    gateway_config,
    gateway_process,
    memory_mib,
    missing_tools,
    nginx_upstream,
    run_wrk,
)

TARGET_MEMORY_MS = 0.1
TARGET_REDIS_MS = 0.5
_HIGH = {
    "requests_per_minute": 1_000_000_000,
    "tokens_per_minute": 1_000_000_000_000,
    "max_concurrent": 100_000,
    "token_budget": 1_000_000_000_000_000,
    "budget_period": "day",
}


def _variants(redis_url: str) -> dict[str, Variant]:
    key_team = {"teams": {"bench-team": dict(_HIGH)}, "default": dict(_HIGH)}
    return {
        "off": Variant("off", "limits off", config={"limits": {"enabled": False}}),
        "memory": Variant("memory", "limits in memory", config={"limits": key_team}),
        "redis": Variant(
            "redis",
            "limits in Redis",
            config={
                "limits": {
                    **key_team,
                    "backend": "redis",
                    "failure_policy": "closed",
                    "redis": {"url": redis_url, "socket_timeout_s": 2, "connect_timeout_s": 2},
                }
            },
        ),
    }


def serve(config_file: str) -> None:
    """Serve like ``llmops serve``, adding the limits plug-in if the defaults lack it."""
    import uvicorn

    from gateway._app import GatewayApp
    from gateway._config import load_config
    from gateway._plugins import default_plugins
    from gateway.limits import limits_plugin
    from gateway.limits._edge import bounded_httptools

    cfg = load_config(config_file)
    cfg.auth.keys[0].team = "bench-team"
    plugins = default_plugins(cfg)
    gw = GatewayApp(cfg, plugins)
    if not gw.proxy.admissions and cfg.limits.enabled:
        limits_plugin(gw)
    uvicorn.run(
        gw.app,
        host=cfg.server.host,
        port=cfg.server.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http=bounded_httptools(cfg.server.max_header_bytes),
    )


def _check(url: str, body: bytes, expect_limits: bool) -> None:
    with urllib.request.urlopen(chat_post(url, body), timeout=10) as r:
        assert r.status == 200
        has = "x-ratelimit-limit-requests" in r.headers
        if has != expect_limits:
            raise RuntimeError(f"{url}: rate-limit headers present={has}, wanted {expect_limits}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    missing = missing_tools("nginx", "wrk", "redis-server")
    if missing:
        print(
            f"skip limits_overhead: {', '.join(missing)} missing "
            "(bash scripts/system_deps.sh bench)"
        )
        return 0
    serve_cmd = f"{sys.executable} -m bench.limits_overhead --serve {{config}}"
    cpu: dict[str, list[tuple[float, int]]] = {}
    mem: dict[str, float] = {}
    redis_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="llmops-bench-limits-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        rport = free_port()
        redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(rport),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        stack.callback(redis.kill)
        time.sleep(0.5)
        json_url, sse_url = stack.enter_context(nginx_upstream(work))
        body_file = work / "body.json"
        body_file.write_bytes(orjson.dumps(chat_request(MODEL, False)))
        gateways: dict[str, tuple[str, int]] = {}
        for name, v in _variants(f"redis://127.0.0.1:{rport}/0").items():
            d = work / name
            d.mkdir()
            cfg = gateway_config(free_port(), json_url, sse_url, v)
            url, pid = stack.enter_context(gateway_process(cfg, d, serve_cmd))
            _check(url, body_file.read_bytes(), name != "off")
            gateways[name] = (url, pid)
            run_wrk(url + "/v1/chat/completions", body_file, args.concurrency, args.warmup, pid)
        for r in range(args.rounds):
            for name, (url, pid) in gateways.items():
                r0 = cpu_seconds(redis.pid)
                res = run_wrk(
                    url + "/v1/chat/completions", body_file, args.concurrency, args.duration, pid
                )
                if name == "redis" and res.requests:
                    redis_cpu.append((cpu_seconds(redis.pid) - r0) * 1e3 / res.requests)
                if res.errors:
                    print(f"warning: {name}: {res.errors} errors {res.error_detail}")
                cpu.setdefault(name, []).append((res.cpu_ms_per_request or 0.0, res.requests))
                print(
                    f"round {r + 1} {name:6s}: {res.cpu_ms_per_request:.3f} ms CPU/request, "
                    f"{res.rps:.0f} req/s, p50 {res.p50_ms:.2f} ms",
                    flush=True,
                )
        for name, (_, pid) in gateways.items():
            mem[name] = memory_mib(pid).get("VmRSS", 0.0)
    med = {n: statistics.median(c for c, _ in runs) for n, runs in cpu.items()}
    added_mem = med["memory"] - med["off"]
    added_redis = med["redis"] - med["off"]
    ok_mem, ok_redis = added_mem <= TARGET_MEMORY_MS, added_redis <= TARGET_REDIS_MS
    lines = [
        f"# Rate-limit overhead (gateway CPU per request, concurrency {args.concurrency}, "
        f"median of {args.rounds} rounds x {args.duration:g}s; load avg at end "
        f"{os.getloadavg()[0]:.1f})",
        "",
        "| limits | CPU ms/request | added ms | target | RSS MiB |",
        "|---|---|---|---|---|",
        f"| off | {med['off']:.3f} | - | - | {mem['off']:.0f} |",
        f"| in memory | {med['memory']:.3f} | {added_mem:+.3f} | <= {TARGET_MEMORY_MS} "
        f"{'PASS' if ok_mem else 'FAIL'} | {mem['memory']:.0f} |",
        f"| Redis | {med['redis']:.3f} | {added_redis:+.3f} | <= {TARGET_REDIS_MS} "
        f"{'PASS' if ok_redis else 'FAIL'} | {mem['redis']:.0f} |",
    ]
    if redis_cpu:
        lines.append(
            f"\nredis-server's own CPU per request (not in the gateway's figure): "
            f"{statistics.median(redis_cpu):.3f} ms"
        )
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "limits.md").write_text(table)
    (args.out / "limits.json").write_text(
        json.dumps(
            {"cpu_ms": cpu, "median": med, "rss_mib": mem, "redis_server_cpu_ms": redis_cpu},
            indent=2,
        )
    )
    return 1 if args.strict and not (ok_mem and ok_redis) else 0


if __name__ == "__main__":
    raise SystemExit(main())
