"""Gateway CPU per request with Langfuse tracing at sampling 1.0 vs tracing off.

Reuses the gateway benchmark's harness (``bench/gateway_overhead.py``): nginx as a fixed-body
upstream (plain JSON and SSE), wrk posting chat bodies with a bearer key, real ``llmops serve``
processes. A second nginx stands in for Langfuse's OTLP endpoint (answers 200, logs each export
POST), so the stand-in costs next to nothing and the figure is the gateway's own. Two gateways
run side by side (observability off; tracing on at sample rate 1.0 with input/output capture,
the default redaction, and both attribute sets on every span: Langfuse's and OpenTelemetry's
GenAI semantic conventions) and wrk runs alternate between them round by round, so machine
drift hits both. CPU is the gateway's whole process tree: every thread of the gateway plus its
trace worker process (which builds the spans and runs the SDK's exporter), read from /proc from
the start of a wrk run until the exporter has flushed what that run produced, divided by the
requests served. The table splits it by where it ran.

    python -m bench.tracing_overhead [--duration 6] [--rounds 3] [--concurrency 16]

Target: tracing adds <= 0.3 ms of gateway CPU per request. Writes ``bench/out/tracing.md`` and
``bench/out/tracing.json``. Needs nginx and wrk (``scripts/system_deps.sh bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import orjson

from bench.gateway_overhead import (
    CLK_TCK,
    MODEL,
    ROOT,
    STREAM_MODEL,
    Variant,
    chat_post,
    chat_request,
    cpu_seconds,
    free_port,
    gateway_config,
    gateway_process,
    memory_mib,
    missing_tools,
    nginx_process,
    run_wrk,
)
from bench.gateway_overhead import nginx_upstream as nginx_replica

TARGET_MS = 0.3
FLUSH_INTERVAL_S = 1.0  # the tracer's export interval in the "on" gateway; drains wait for it

_OTLP_CONF = """
worker_processes 1;
daemon off;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events { worker_connections 1024; }
http {
    log_format export '$status $content_length';
    client_body_temp_path @PREFIX@/body;
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:@PORT@;
        location = /health { access_log off; return 200; }
        location = /api/public/otel/v1/traces {
            access_log @PREFIX@/exports.log export;
            default_type application/x-protobuf;
            return 200 '';
        }
        # The prompt-links refresh lists Langfuse's prompts: none are synced here.
        location = /api/public/v2/prompts {
            access_log off;
            default_type application/json;
            return 200 '{"data": [], "meta": {"page": 1, "limit": 100, "totalItems": 0,
                                              "totalPages": 0}}';
        }
        location / { access_log off; return 200 '{}'; }
    }
}
"""


@contextmanager
def langfuse_standin(work: Path) -> Iterator[tuple[str, Path]]:
    """nginx answering Langfuse's OTLP/HTTP traces endpoint; yields (base URL, export log)."""
    prefix = work / "otlp"
    prefix.mkdir()
    port = free_port()
    conf = _OTLP_CONF.replace("@PREFIX@", str(prefix)).replace("@PORT@", str(port))
    url = f"http://127.0.0.1:{port}"
    with nginx_process(prefix, conf, [url + "/health"]):
        yield url, prefix / "exports.log"


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the event-loop thread and of all other threads together (span building,
    export): where tracing's cost lands (``/proc/PID/task/*/stat``)."""
    out = {"event loop": 0.0, "other threads": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        fields = stat[stat.rindex(")") + 2 :].split()
        key = "event loop" if task.name == str(pid) else "other threads"
        out[key] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (the trace worker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the gateway's event-loop thread, its other threads, and its child
    processes (the trace worker): tracing's whole cost, wherever it runs."""
    out = thread_cpu(pid)
    out["trace worker process"] = sum(cpu_seconds(c) for c in children(pid))
    return out


def exports(log: Path) -> tuple[int, int]:
    """(export POSTs answered 200, request bytes) so far."""
    if not log.exists():
        return 0, 0
    n = size = 0
    for line in log.read_text().splitlines():
        status, _, length = line.partition(" ")
        if status == "200":
            n += 1
            size += int(length or 0)
    return n, size


def variants(langfuse_url: str) -> dict[str, Variant]:
    return {
        "off": Variant("off", "observability off", config={"observability": {"enabled": False}}),
        "on": Variant(
            "on",
            "Langfuse tracing, sample rate 1.0",
            config={
                "observability": {
                    "enabled": True,
                    "tracing": {
                        "enabled": True,
                        "sample_rate": 1.0,
                        "langfuse": {
                            "base_url": langfuse_url,
                            "public_key": "pk-lf-bench",
                            "secret_key": "sk-lf-bench",
                            "flush_interval_s": FLUSH_INTERVAL_S,
                        },
                    },
                }
            },
        ),
    }


def traced(url: str, body: bytes) -> bool:
    with urllib.request.urlopen(chat_post(url, body), timeout=10) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: status {r.status}")
        return "x-trace-id" in r.headers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args(argv)
    missing = missing_tools("nginx", "wrk")
    if missing:
        print(f"skip tracing_overhead: {', '.join(missing)} missing (scripts/system_deps.sh bench)")
        return 0
    drain = FLUSH_INTERVAL_S + 1.0  # one export interval plus a second for the worker
    cpu: dict[str, list[float]] = {}
    threads: dict[str, dict[str, list[float]]] = {}
    mem: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="llmops-bench-tracing-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        json_url, sse_url = stack.enter_context(nginx_replica(work))
        lf_url, export_log = stack.enter_context(langfuse_standin(work))
        bodies = {}
        for kind, model, stream in (("plain", MODEL, False), ("stream", STREAM_MODEL, True)):
            bodies[kind] = work / f"{kind}.json"
            bodies[kind].write_bytes(orjson.dumps(chat_request(model, stream)))
        gateways: dict[str, tuple[str, int]] = {}
        for name, v in variants(lf_url).items():
            d = work / name
            d.mkdir()
            cfg = gateway_config(free_port(), json_url, sse_url, v)
            url, pid = stack.enter_context(gateway_process(cfg, d, ""))
            if traced(url, bodies["plain"].read_bytes()) != (name == "on"):
                raise RuntimeError(f"{name}: x-trace-id header presence is wrong")
            gateways[name] = (url, pid)
            for body in bodies.values():
                run_wrk(url + "/v1/chat/completions", body, args.concurrency, args.warmup, None)
        time.sleep(drain)
        for r in range(args.rounds):
            for kind, body in bodies.items():
                order = list(gateways.items())
                for name, (url, pid) in order if r % 2 == 0 else order[::-1]:
                    t0 = tree_cpu(pid)
                    res = run_wrk(
                        url + "/v1/chat/completions", body, args.concurrency, args.duration, None
                    )
                    time.sleep(drain)
                    t1 = tree_cpu(pid)
                    per = {t: (t1[t] - t0.get(t, 0.0)) * 1e3 / max(res.requests, 1) for t in t1}
                    ms = sum(per.values())
                    for t, v in per.items():
                        threads.setdefault(f"{name}_{kind}", {}).setdefault(t, []).append(v)
                    if res.errors:
                        print(f"warning: {name} {kind}: {res.errors} errors {res.error_detail}")
                    cpu.setdefault(f"{name}_{kind}", []).append(ms)
                    print(
                        f"round {r + 1} {name:3s} {kind:6s}: {ms:.3f} ms CPU/request, "
                        f"{res.rps:.0f} req/s, p50 {res.p50_ms:.2f} ms",
                        flush=True,
                    )
        for name, (_, pid) in gateways.items():
            mem[name] = memory_mib(pid).get("VmRSS", 0.0)
        mem["trace worker"] = sum(
            memory_mib(c).get("VmRSS", 0.0) for c in children(gateways["on"][1])
        )
        n_exports, export_bytes = exports(export_log)
    if not n_exports:
        raise RuntimeError("the tracing gateway exported nothing to the Langfuse stand-in")
    med = {k: statistics.median(v) for k, v in cpu.items()}
    # Paired: each round's on and off runs are back to back, so the median of the per-round
    # differences cancels the machine's drift better than a difference of medians.
    added = {
        k: statistics.median(a - b for a, b in zip(cpu[f"on_{k}"], cpu[f"off_{k}"], strict=True))
        for k in ("plain", "stream")
    }
    ok = all(a <= TARGET_MS for a in added.values())
    lines = [
        f"# Tracing overhead (gateway CPU per request, concurrency {args.concurrency}, median of "
        f"{args.rounds} rounds x {args.duration:g}s, added = median of the per-round "
        f"differences; load avg at end {os.getloadavg()[0]:.1f})",
        "",
        "| request | tracing off | tracing on (1.0) | added ms | target |",
        "|---|---|---|---|---|",
    ]
    for k, a in added.items():
        verdict = "PASS" if a <= TARGET_MS else "FAIL"
        lines.append(
            f"| {k} | {med[f'off_{k}']:.3f} | {med[f'on_{k}']:.3f} | {a:+.3f} | "
            f"<= {TARGET_MS} {verdict} |"
        )
    lines += ["", "CPU ms/request by where it ran (median):", ""]
    for key, per in threads.items():
        parts = sorted(((statistics.median(v), t) for t, v in per.items()), reverse=True)
        lines.append(f"- {key}: " + ", ".join(f"{t} {m:.3f}" for m, t in parts))
    lines += [
        "",
        f"RSS MiB: gateway off {mem['off']:.0f}, on {mem['on']:.0f}, its trace worker "
        f"{mem['trace worker']:.0f}. "
        f"{n_exports} OTLP export requests reached the stand-in ({export_bytes / 1e6:.1f} MB).",
    ]
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tracing.md").write_text(table)
    (args.out / "tracing.json").write_text(
        json.dumps(
            {"cpu_ms": cpu, "median": med, "added": added, "rss_mib": mem, "threads": threads},
            indent=2,
        )
    )
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
