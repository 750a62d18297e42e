"""CPU time of prompt resolution + rendering per request (the gateway's share of a prompt).

Usage: .venv/bin/python bench/prompts_render.py [--n 20000]

Runs ``gateway._prompt_resolution.resolve_prompt`` on dict bodies against the shipped templates
(registry from the working tree), single-threaded, and reports CPU microseconds per call: a body
without ``prompt`` (the floor), each shipped prompt, and a canary lookup with a sticky user.
Retrieval is an in-memory coroutine returning fixed hits, so only our own work is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from gateway._prompt_resolution import resolve_prompt
from prompts import PromptRegistry

HITS = [
    {
        "id": f"d{i}",
        "score": 0.9 - i / 10,
        "text": "Paris is the capital of France. " * 8,
        "source": f"doc{i}.md",
        "metadata": {},
    }
    for i in range(3)
]


async def retrieve(collection: str, query: str, top_k: int, filters: Any) -> list[dict[str, Any]]:
    return HITS[:top_k]


def bodies() -> dict[str, dict[str, Any]]:
    msgs = [{"role": "user", "content": "hello"}]
    text = "The meeting moved to Friday. Bring the budget report. " * 20
    return {
        "no prompt": {"model": "m", "messages": msgs},
        "summarise": {
            "model": "m",
            "messages": [],
            "prompt": {"id": "summarise", "variables": {"text": text}},
        },
        "extract-json": {
            "model": "m",
            "messages": [],
            "prompt": {"id": "extract-json", "variables": {"text": text}},
        },
        "rag-answer (retrieval)": {
            "model": "m",
            "messages": [],
            "prompt": {"id": "rag-answer", "variables": {"question": "Capital of France?"}},
        },
        "summarise@production user=u1": {
            "model": "m",
            "messages": [],
            "user": "u1",
            "prompt": {"id": "summarise", "version": "production", "variables": {"text": text}},
        },
    }


async def main(n: int, reg: PromptRegistry) -> None:
    print(f"{'case':32} {'CPU us/request':>15}")
    for name, body in bodies().items():
        for _ in range(200):  # warm up
            await resolve_prompt(body, reg, retrieve=retrieve)
        t0 = time.process_time()
        for _ in range(n):
            await resolve_prompt(body, reg, retrieve=retrieve)
        us = (time.process_time() - t0) / n * 1e6
        print(f"{name:32} {us:15.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    registry = PromptRegistry.from_directory(Path(__file__).resolve().parents[1] / "prompts")
    asyncio.run(main(ap.parse_args().n, registry))
