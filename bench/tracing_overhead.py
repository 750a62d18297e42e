"""Gateway CPU per request with Langfuse tracing at sampling 1.0 vs tracing off.

Three processes: a fake upstream + Langfuse stand-in (OTLP receiver), the gateway (measured:
user+system CPU from /proc/<pid>/stat around the load, all threads, export included), and this
load generator (aiohttp, fixed concurrency). Usage::

    python bench/tracing_overhead.py --requests 3000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]

_SIDE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, %r)
    from tests.fakes.openai_upstream import FakeUpstream
    from tests.observability.otlp_receiver import Receiver
    u = FakeUpstream(name="a", port=int(sys.argv[1])).start()
    r = Receiver(port=int(sys.argv[2])).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
""")

_GATEWAY = textwrap.dedent("""
    import sys, uvicorn
    sys.path.insert(0, %r)
    from gateway import GatewayConfig
    from gateway.app import GatewayApp
    from gateway.observability import observability_plugin
    mode, port, up, lf = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    obs = {"tracing": {"enabled": mode != "off", "sample_rate": 1.0,
                       "langfuse": {"public_key": "pk-bench", "secret_key": "sk", "base_url": lf}}}
    cfg = GatewayConfig(auth={"enabled": False}, health={"interval_s": 30},
                        models=[{"name": "chat", "upstreams": [{"url": up}]}],
                        observability=obs)
    plugins = [observability_plugin] if mode != "off" else []
    uvicorn.run(GatewayApp(cfg, plugins).app, host="127.0.0.1", port=port, log_level="warning",
                access_log=False)
""")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(url: str, n: int, conc: int, stream: bool) -> float:
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "hello, how are you?"}],
        "max_tokens": 16,
        "stream": stream,
    }
    left = n

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                await r.read()
                assert r.status == 200, r.status

    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        await asyncio.gather(*(worker(s) for _ in range(conc)))
    return time.perf_counter() - t0


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise TimeoutError(url)


def run_mode(mode: str, up: str, lf: str, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    p = subprocess.Popen([sys.executable, "-c", _GATEWAY % str(ROOT), mode, str(port), up, lf])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        asyncio.run(load(url, 300, args.concurrency, False))  # warm-up
        out = {}
        for stream in (False, True):
            time.sleep(0.5)
            c0 = cpu_seconds(p.pid)
            wall = asyncio.run(load(url, args.requests, args.concurrency, stream))
            time.sleep(args.drain)  # let the exporter thread finish its batches
            cpu = cpu_seconds(p.pid) - c0
            key = "stream" if stream else "plain"
            out[f"{key}_cpu_ms"] = cpu / args.requests * 1e3
            out[f"{key}_rps"] = args.requests / wall
        return out
    finally:
        p.terminate()
        p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--drain", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    up_port, lf_port = free_port(), free_port()
    side = subprocess.Popen(
        [sys.executable, "-c", _SIDE % str(ROOT), str(up_port), str(lf_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert side.stdout is not None and side.stdout.readline().strip() == "ready"
        up, lf = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{lf_port}"
        results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        for _ in range(args.rounds):  # interleaved, so machine noise hits both modes
            for mode in ("off", "on"):
                results[mode].append(run_mode(mode, up, lf, args))
        for mode, rs in results.items():
            for k in ("plain_cpu_ms", "stream_cpu_ms", "plain_rps", "stream_rps"):
                vals = sorted(r[k] for r in rs)
                print(f"{mode:4s} {k:14s} " + " ".join(f"{v:8.3f}" for v in vals))
        for k in ("plain_cpu_ms", "stream_cpu_ms"):
            off = min(r[k] for r in results["off"])
            on = min(r[k] for r in results["on"])
            print(f"tracing overhead {k}: {on - off:+.3f} ms CPU/request (best of {args.rounds})")
    finally:
        side.terminate()
        side.wait(10)


if __name__ == "__main__":
    main()
