"""Real-engine benchmark: output tokens/s direct to vLLM vs through the gateway.

Starts a gateway process whose config has a local engine (the ``llmops serve`` path), times
serve -> ready (warm cache: engine venv and model already prepared), then alternates direct and
gateway runs at 1 and 8 concurrent streams (fixed-length outputs via ``ignore_eos``), sampling
peak RSS of the gateway process and of the whole engine process group.

    python bench/engine_throughput.py --rounds 3 --max-tokens 128 \
        [--serve-cmd "llmops serve --config {config}"]

Prints a table and writes bench/out/engine_throughput.json. Ratios are what carries over
between machines; absolute numbers depend on load (2 shared cores here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2"
PROMPT = "Tell me a long story about a lighthouse keeper and the sea."

NEEDS_ENGINE = True


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (the gateway), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


class RssSampler:
    """Peak RSS (sum over processes) of the gateway and of the engine's process group."""

    def __init__(self, gateway_pid: int) -> None:
        self.gateway_pid = gateway_pid
        self.engine_pgid: int | None = None
        self.peak_gateway = 0
        self.peak_engine = 0

    async def run(self) -> None:
        while True:
            self.peak_gateway = max(self.peak_gateway, _rss_kib(self.gateway_pid))
            if self.engine_pgid:
                total = sum(_rss_kib(p) for p in _group_pids(self.engine_pgid))
                self.peak_engine = max(self.peak_engine, total)
            await asyncio.sleep(0.5)


async def one_stream(http: aiohttp.ClientSession, base: str, max_tokens: int, key: str) -> int:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "ignore_eos": True,  # vLLM: exactly max_tokens tokens, so every run does equal work
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens = 0
    headers = {"authorization": f"Bearer {key}"}
    async with http.post(f"{base}/v1/chat/completions", json=body, headers=headers) as resp:
        resp.raise_for_status()
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            usage = orjson.loads(line[6:]).get("usage")
            if usage:
                tokens = int(usage["completion_tokens"])
    return tokens


async def measure(base: str, streams: int, max_tokens: int, key: str) -> float:
    """Aggregate output tokens/s of ``streams`` concurrent streaming requests."""
    tokens, seconds = await measure_raw(base, streams, max_tokens, key)
    return tokens / seconds


async def measure_raw(base: str, streams: int, max_tokens: int, key: str) -> tuple[int, float]:
    """(output tokens, wall seconds) of ``streams`` concurrent streaming requests."""
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        start = time.perf_counter()
        counts = await asyncio.gather(
            *(one_stream(http, base, max_tokens, key) for _ in range(streams))
        )
        return sum(counts), time.perf_counter() - start


async def wait_ready(url: str, proc: subprocess.Popen[bytes], limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode}")
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return dict(await resp.json())
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise TimeoutError("gateway not ready")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"enabled": False},
        "prompts": None,
        "models": [{"name": MODEL, "engine": {"startup_timeout_s": 900}}],
    }
    cfg_file = Path(tempfile.mkdtemp(prefix="llmops-bench-")) / "gateway.yaml"
    cfg_file.write_text(yaml.safe_dump(config))
    template = args.serve_cmd or f"{sys.executable} -m llmops serve --config {{config}}"
    cmd = shlex.split(template.format(config=cfg_file, port=port))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLMOPS_SERVER__PORT": str(port)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)  # noqa: ASYNC220 - returns at once
    sampler = RssSampler(proc.pid)
    sampler_task = asyncio.create_task(sampler.run())
    gateway = f"http://127.0.0.1:{port}"
    try:
        ready = await wait_ready(gateway, proc, 900)
        serve_to_ready = time.perf_counter() - t0
        direct = ready["models"][MODEL]["replicas"][0]["url"]
        sampler.engine_pgid = _engine_pgid(direct)
        print(f"serve -> ready: {serve_to_ready:.1f} s; engine {direct}", flush=True)
        await measure(direct, 2, 16, "x")  # warm-up
        results: dict[str, dict[str, list[float]]] = {
            "direct": {"1": [], "8": []},
            "gateway": {"1": [], "8": []},
        }
        gw_cpu_s, gw_tokens = 0.0, 0
        for r in range(args.rounds):
            order = ("direct", "gateway") if r % 2 == 0 else ("gateway", "direct")
            for streams in (1, 8):
                for mode in order:
                    base = direct if mode == "direct" else gateway
                    cpu0 = _cpu_seconds(proc.pid)
                    tokens, seconds = await measure_raw(base, streams, args.max_tokens, "x")
                    if mode == "gateway":
                        gw_cpu_s += _cpu_seconds(proc.pid) - cpu0
                        gw_tokens += tokens
                    tps = tokens / seconds
                    results[mode][f"{streams}"].append(tps)
                    print(f"round {r} {mode:7s} x{streams}: {tps:7.1f} tok/s", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        sampler_task.cancel()
    summary: dict[str, Any] = {
        "serve_to_ready_s": round(serve_to_ready, 1),
        "peak_rss_gateway_mib": round(sampler.peak_gateway / 1024),
        "peak_rss_engine_mib": round(sampler.peak_engine / 1024),
        "gateway_cpu_ms_per_streamed_token": round(1000 * gw_cpu_s / max(gw_tokens, 1), 3),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "runs": results,
    }
    for label in ("1", "8"):
        d = statistics.median(results["direct"][label])
        g = statistics.median(results["gateway"][label])
        summary[f"tok_s_direct_x{label}"] = round(d, 1)
        summary[f"tok_s_gateway_x{label}"] = round(g, 1)
        summary[f"ratio_x{label}"] = round(g / d, 3)
    return summary


def _engine_pgid(url: str) -> int | None:
    """The engine is the process listening on the replica's port; its pgid is its pid."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    try:
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
        pid = int(out.split("pid=")[1].split(",")[0])
    except (OSError, IndexError, ValueError):
        return None
    return os.getpgid(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--serve-cmd",
        default="",
        help="command starting the gateway ({config}, {port} filled in); default llmops serve",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "engine_throughput.json"))
    ns = parser.parse_args(argv)
    result = asyncio.run(run(ns))
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
