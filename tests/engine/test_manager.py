"""EngineManager supervision with a stand-in api_server (``fake_vllm``), in seconds.

The stand-in replaces vLLM only here, because a real start costs about a minute of CPU; the
same behaviour is checked against the real engine in ``test_engine_real.py`` (marker
``engine``). It spawns a worker child that ignores SIGTERM, like a stuck engine core.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from engine import EngineManager, EngineSpec, EngineStartError
from engine._procs import group_members

FAKE = Path(__file__).parent / "fake_vllm"


def _spec(tmp_path: Path, **env: str) -> EngineSpec:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    return EngineSpec(
        model=str(model),
        python=Path(sys.executable),
        env={"PYTHONPATH": str(FAKE), **env},
        startup_timeout_s=30,
        stop_grace_s=1,
    )


async def _members_eventually(pgid: int, within: float = 10) -> list[int]:
    deadline = time.monotonic() + within
    while (members := group_members(pgid)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return members


async def _worker_started(pgid: int) -> None:
    for _ in range(100):
        if len(group_members(pgid)) >= 2:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("fake engine never spawned its worker")


async def test_start_serves_health_and_stop_kills_whole_group(tmp_path: Path) -> None:
    manager = EngineManager("fake", "fake-model", _spec(tmp_path), home=tmp_path, progress=False)
    url = await manager.start()
    assert manager.ready and url == manager.base_url
    pgid = manager.pid
    assert pgid is not None
    await _worker_started(pgid)
    async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/models") as resp:
        assert (await resp.json())["data"][0]["id"] == "fake-model"
    cmd = manager.command or []
    assert "--served-model-name" in cmd and str(tmp_path / "model") in cmd
    await manager.stop()
    assert await _members_eventually(pgid) == []  # the SIGTERM-ignoring worker is gone too
    assert not manager.ready and manager.pid is None
    log = (tmp_path / "logs" / "engine-fake.log").read_text()
    assert "llmops starts:" in log and "fake engine argv:" in log
    await manager.stop()  # idempotent


async def test_restarts_after_the_engine_is_killed(tmp_path: Path) -> None:
    manager = EngineManager("fake", "fake-model", _spec(tmp_path), home=tmp_path, progress=False)
    await manager.start()
    try:
        old = manager.pid
        assert old is not None
        await _worker_started(old)
        port = manager.base_url
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (manager.restarts < 1 or not manager.ready) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert manager.restarts == 1 and manager.ready
        assert manager.pid not in (None, old)
        assert manager.base_url == port  # same address after a restart
        assert await _members_eventually(old) == []  # the old group's worker was cleaned up
        async with aiohttp.ClientSession() as http, http.get(f"{port}/health") as resp:
            assert resp.status == 200
    finally:
        await manager.stop()


async def test_start_failure_reports_the_log_tail(tmp_path: Path) -> None:
    spec = _spec(tmp_path, FAKE_ENGINE_FAIL="1")
    manager = EngineManager("broken", "m", spec, home=tmp_path, progress=False)
    with pytest.raises(EngineStartError, match="simulated start-up failure") as err:
        await manager.start()
    assert "exited with code 3" in str(err.value)
    assert manager.pid is None


async def test_taken_port_is_retried_once_on_another(tmp_path: Path) -> None:
    spec = _spec(tmp_path, FAKE_ENGINE_BUSY_ONCE=str(tmp_path / "busy"))
    manager = EngineManager("busy", "m", spec, home=tmp_path, progress=False)
    try:
        await manager.start()
        assert manager.ready
        log = (tmp_path / "logs" / "engine-busy.log").read_text()
        assert log.count("llmops starts:") == 2 and "Address already in use" in log
    finally:
        await manager.stop()


async def test_start_timeout_kills_the_engine(tmp_path: Path) -> None:
    spec = _spec(tmp_path, FAKE_ENGINE_DELAY="60").model_copy(update={"startup_timeout_s": 1.5})
    manager = EngineManager("slow", "m", spec, home=tmp_path, progress=False)
    with pytest.raises(EngineStartError, match="not healthy after"):
        await manager.start()
    assert manager.pid is None


async def test_event_loop_stays_responsive_during_start(tmp_path: Path) -> None:
    spec = _spec(tmp_path, FAKE_ENGINE_DELAY="1")
    manager = EngineManager("fake", "m", spec, home=tmp_path, progress=False)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await manager.start()
    finally:
        task.cancel()
        await manager.stop()
    assert ticks >= 10  # about 1 s of start-up, the loop kept ticking
