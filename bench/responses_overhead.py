"""Gateway CPU per Responses API request against a chat completion, same gateway, same run.

``POST /v1/responses`` takes the chat path plus what is its own: the response id is read from the
plain body (or the stream's ``response.created`` event) and remembered with its replica, so that
``GET /v1/responses/{id}`` and ``previous_response_id`` reach the replica that holds it; usage is
read as ``input_tokens`` / ``output_tokens`` from typed stream events. Target: a Responses request
costs the gateway at most 10% more CPU than a chat request, plain and streamed.

One nginx serves vLLM-shaped fixed bodies for both routes (plain JSON and SSE; the Responses
stream carries vLLM's typed events, ``response.created`` to ``response.completed``), one real
``llmops serve`` process (auth and metrics on, the core benchmark's config) serves both, and wrk
runs alternate chat / responses round by round, so machine drift hits both sides. CPU per
request is the gateway process's utime + stime over a run divided by the requests served.

    python -m bench.responses_overhead [--duration 6] [--rounds 4] [--concurrency 16]

Writes ``bench/out/responses.md`` and ``bench/out/responses.json``. Needs nginx and wrk
(``scripts/system_deps.sh bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench.gateway_overhead import (
    API_KEY,
    CHAT_RESPONSE,
    MODEL,
    ROOT,
    STREAM_MODEL,
    Variant,
    chat_request,
    chat_sse,
    free_port,
    gateway_config,
    gateway_process,
    missing_tools,
    nginx_process,
    run_wrk,
)

TARGET_RATIO = 1.10
RESPONSE_ID = "resp_bench0123456789abcdef"
MESSAGE_ID = "msg_bench0123456789abcdef"
TEXT: str = CHAT_RESPONSE["choices"][0]["message"]["content"]
USAGE = {
    "input_tokens": 61,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 29,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 90,
}

# Static files behind ``error_page 405 =200 $uri``: nginx's static module refuses POST, and a
# Responses stream is longer than the 4 KiB an nginx ``return`` string may hold.
_CONF = """
worker_processes 1;
daemon off;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path @PREFIX@/body;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    types { }
    server {
        listen 127.0.0.1:@PORT_JSON@;
        default_type application/json;
        location = /health { return 200; }
        location /v1/ { root @PREFIX@/json; error_page 405 =200 $uri; }
    }
    server {
        listen 127.0.0.1:@PORT_SSE@;
        default_type text/event-stream;
        location = /health { return 200; }
        location /v1/ { root @PREFIX@/sse; error_page 405 =200 $uri; }
    }
}
"""


def response_object(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    """A Response as vLLM 0.32 writes it (the fields OpenAI's spec requires, and its echoes)."""
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": 1767225600,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 64,
        "model": MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "metadata": {},
        "temperature": 0.2,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": usage,
    }


def _message(status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def responses_json() -> bytes:
    return orjson.dumps(response_object("completed", [_message("completed", TEXT)], USAGE))


def responses_sse(model: str = STREAM_MODEL) -> bytes:
    """vLLM's typed events for one message: the same six text pieces as the chat stream."""
    n = len(TEXT) // 6 + 1
    pieces = [TEXT[i : i + n] for i in range(0, len(TEXT), n)]
    part = {"type": "output_text", "text": "", "annotations": []}
    ids = {"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0}
    started = {**response_object("in_progress", [], None), "model": model}
    done = {**response_object("completed", [_message("completed", TEXT)], USAGE), "model": model}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": _message("in_progress", None),
        },
        {"type": "response.content_part.added", **ids, "part": part},
        *(
            {"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []}
            for p in pieces
        ),
        {"type": "response.output_text.done", **ids, "text": TEXT, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": {**part, "text": TEXT}},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": _message("completed", TEXT),
        },
        {"type": "response.completed", "response": done},
    ]
    return b"".join(
        b"event: "
        + e["type"].encode()
        + b"\ndata: "
        + orjson.dumps({**e, "sequence_number": i})
        + b"\n\n"
        for i, e in enumerate(events)
    )


def responses_request(model: str = MODEL, stream: bool = False) -> dict[str, Any]:
    """The chat benchmark's request, said the Responses way."""
    chat = chat_request(model)
    system, user = chat["messages"]
    body: dict[str, Any] = {
        "model": model,
        "instructions": system["content"],
        "input": [{"role": "user", "content": user["content"]}],
        "max_output_tokens": chat["max_tokens"],
        "temperature": chat["temperature"],
    }
    if stream:
        body["stream"] = True
    return body


@contextmanager
def upstream(work: Path) -> Iterator[tuple[str, str]]:
    """nginx answering both routes; yields (plain JSON base URL, SSE base URL)."""
    prefix = work / "nginx"
    files = {
        "json/v1/chat/completions": orjson.dumps(CHAT_RESPONSE),
        "json/v1/responses": responses_json(),
        "sse/v1/chat/completions": chat_sse(),
        "sse/v1/responses": responses_sse(),
    }
    for rel, data in files.items():
        (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
        (prefix / rel).write_bytes(data)
    # nginx's workers (an unprivileged user when started as root) must read the files.
    for d in (work, *(p for p in prefix.rglob("*") if p.is_dir()), prefix):
        d.chmod(0o755)
    pj, ps = free_port(), free_port()
    conf = _CONF.replace("@PREFIX@", str(prefix))
    conf = conf.replace("@PORT_JSON@", str(pj)).replace("@PORT_SSE@", str(ps))
    json_url, sse_url = f"http://127.0.0.1:{pj}", f"http://127.0.0.1:{ps}"
    with nginx_process(prefix, conf, [json_url + "/health", sse_url + "/health"]):
        yield json_url, sse_url


def _check(gw_url: str, path: str, body: bytes, want: bytes) -> None:
    """One request before the load: 200, and the body (or stream) the route should relay."""
    req = urllib.request.Request(
        gw_url + path,
        data=body,
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        got = r.read()
    if want not in got:
        raise RuntimeError(f"{path}: the gateway answered {got[:300]!r}")


CASES = {
    # case: (path, request body, a piece of the answer the relay must carry)
    "chat plain": ("/v1/chat/completions", chat_request(MODEL), b'"chat.completion"'),
    "chat stream": ("/v1/chat/completions", chat_request(STREAM_MODEL, True), b"[DONE]"),
    "responses plain": ("/v1/responses", responses_request(MODEL), b'"object":"response"'),
    "responses stream": (
        "/v1/responses",
        responses_request(STREAM_MODEL, True),
        b"response.completed",
    ),
}


def measure(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    """CPU ms per request of every case, one value per round."""
    cpu: dict[str, list[float]] = {case: [] for case in CASES}
    with ExitStack() as stack:
        json_url, sse_url = stack.enter_context(upstream(work))
        cfg = gateway_config(free_port(), json_url, sse_url, Variant("core", "core"))
        gw_url, pid = stack.enter_context(gateway_process(cfg, work, ""))
        bodies = {}
        for case, (path, body, want) in CASES.items():
            bodies[case] = work / f"{case.replace(' ', '-')}.json"
            bodies[case].write_bytes(orjson.dumps(body))
            _check(gw_url, path, bodies[case].read_bytes(), want)
            run_wrk(gw_url + path, bodies[case], args.concurrency, args.warmup, pid)
        for r in range(args.rounds):
            order = list(CASES) if r % 2 == 0 else list(CASES)[::-1]
            for case in order:
                res = run_wrk(
                    gw_url + CASES[case][0], bodies[case], args.concurrency, args.duration, pid
                )
                if res.errors:
                    raise RuntimeError(f"{case}: {res.errors} errors {res.error_detail}")
                cpu[case].append(res.cpu_ms_per_request or float("nan"))
                print(
                    f"round {r + 1} {case:16s}: {cpu[case][-1]:.3f} ms CPU/request, "
                    f"{res.rps:.0f} req/s, p50 {res.p50_ms:.2f} ms",
                    flush=True,
                )
    return cpu


def report(cpu: dict[str, list[float]], args: argparse.Namespace) -> tuple[str, bool, dict]:
    med = {k: statistics.median(v) for k, v in cpu.items()}
    ratios = {}
    for kind in ("plain", "stream"):
        # Paired per round (the two runs were back to back), then the median of the ratios.
        pairs = zip(cpu[f"responses {kind}"], cpu[f"chat {kind}"], strict=True)
        ratios[kind] = statistics.median(a / b for a, b in pairs)
    ok = all(r <= TARGET_RATIO for r in ratios.values())
    lines = [
        f"# Responses API vs chat: gateway CPU per request (concurrency {args.concurrency}, "
        f"median of {args.rounds} rounds x {args.duration:g}s, ratio = median of the per-round "
        f"ratios; load avg at end {os.getloadavg()[0]:.1f})",
        "",
        "| request | chat ms | responses ms | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for kind, ratio in ratios.items():
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        lines.append(
            f"| {kind} | {med[f'chat {kind}']:.3f} | {med[f'responses {kind}']:.3f} | "
            f"{ratio:.3f} | <= {TARGET_RATIO:.2f} {verdict} |"
        )
    return "\n".join(lines) + "\n", ok, {"cpu_ms": cpu, "median": med, "ratio": ratios}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args(argv)
    missing = missing_tools("nginx", "wrk")
    if missing:
        print(
            f"skip responses_overhead: {', '.join(missing)} missing (scripts/system_deps.sh bench)"
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="llmops-bench-responses-") as tmp:
        cpu = measure(args, Path(tmp))
    table, ok, data = report(cpu, args)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "responses.md").write_text(table)
    (args.out / "responses.json").write_text(json.dumps(data, indent=2))
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
