"""Reload: whole-registry swaps, last good kept on broken templates, no lost lookups."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from gateway._prompt_resolution import resolve_prompt
from prompts import PromptRegistry, RegistryReloader, RegistryUnavailable, ReloadStatus

from .conftest import Repo

BROKEN = "name: greet\nmessages: [{role: user, content: '{{ who '}]\n"


def content(reg: PromptRegistry) -> str:
    return reg.get("greet").template.render({"who": "W"}).messages[0]["content"]


async def test_git_reload_swaps_and_keeps_last_good(repo: Repo) -> None:
    repo.prompt("greet", "one {{ who }}")
    repo.commit("one")
    seen: list[ReloadStatus] = []
    rl = RegistryReloader.for_git(repo.path, interval=0.05, on_change=seen.append)
    assert await rl.check() is True
    assert content(rl.registry) == "one W"
    assert await rl.check() is False  # nothing new

    repo.prompt("greet", "two {{ who }}")
    repo.commit("two")
    assert await rl.check() is True
    assert content(rl.registry) == "two W"

    repo.write("prompts/greet.yaml", BROKEN)
    repo.commit("broken")
    good = rl.registry
    assert await rl.check() is False
    assert rl.registry is good  # the broken commit never replaced it
    st = rl.status()
    assert st.loaded and not st.ok and st.errors_total == 1
    assert "greet.yaml" in (st.last_error or "")
    assert seen[-1].errors_total == 1
    assert await rl.check() is False  # same broken commit: not rebuilt, not recounted
    assert rl.status().errors_total == 1

    repo.prompt("greet", "three {{ who }}")
    repo.commit("fix")
    assert await rl.check() is True
    st = rl.status()
    assert st.ok and st.last_error is None and st.generation == 3 and st.reloads_total == 3
    assert content(rl.registry) == "three W"
    assert st.to_dict()["commit"] == rl.registry.commit


async def test_first_load_failure_is_unavailable_not_a_crash(repo: Repo) -> None:
    repo.write("prompts/greet.yaml", BROKEN)
    repo.commit("broken from the start")
    rl = RegistryReloader.for_git(repo.path)
    await rl.start()
    try:
        assert not rl.ready
        with pytest.raises(RegistryUnavailable) as ei:
            _ = rl.registry
        assert ei.value.status == 503
        assert not rl.status().loaded
    finally:
        await rl.stop()


async def test_directory_reload_on_file_change(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    f = d / "greet.yaml"
    f.write_text(
        "name: greet\nvariables: {who: {}}\nmessages: [{role: user, content: 'a {{ who }}'}]\n"
    )
    rl = RegistryReloader.for_directory(d, interval=0.05)
    assert await rl.check()
    assert content(rl.registry) == "a W"
    f.write_text(
        "name: greet\nvariables: {who: {}}\nmessages: [{role: user, content: 'bb {{ who }}'}]\n"
    )
    os.utime(f, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert await rl.check()
    assert content(rl.registry) == "bb W"
    f.write_text(BROKEN)
    os.utime(f, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    assert not await rl.check()
    assert content(rl.registry) == "bb W" and not rl.status().ok


async def test_polling_task_picks_up_commits(repo: Repo) -> None:
    repo.prompt("greet", "one {{ who }}")
    repo.commit("one")
    rl = RegistryReloader.for_git(repo.path, interval=0.05)
    await rl.start()
    try:
        repo.prompt("greet", "two {{ who }}")
        repo.commit("two")
        for _ in range(200):
            if rl.status().generation >= 2:
                break
            await asyncio.sleep(0.05)
        assert content(rl.registry) == "two W"
    finally:
        await rl.stop()


TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "prompts"


async def test_build_runs_off_the_event_loop() -> None:
    """A slow build (held on a threading event) must leave the loop free to serve."""
    release = threading.Event()
    started = threading.Event()

    def build(prev: PromptRegistry | None) -> PromptRegistry:
        started.set()
        release.wait(10)
        return PromptRegistry.from_directory(TEMPLATE_DIR, history=False)

    rl = RegistryReloader(build, lambda: object(), source="test")
    task = asyncio.create_task(rl.check())
    ticks = 0
    while not started.is_set():  # noqa: ASYNC110 - a threading.Event, set by the worker
        await asyncio.sleep(0.001)
    for _ in range(20):  # the loop keeps running while the build is blocked
        await asyncio.sleep(0)
        ticks += 1
    assert not task.done()
    release.set()
    assert await task is True and ticks == 20
    assert "summarise" in rl.registry


async def test_reload_under_concurrent_requests_loses_nothing(repo: Repo) -> None:
    versions = []
    repo.prompt("greet", "v0 {{ who }}")
    repo.commit("v0")
    rl = RegistryReloader.for_git(repo.path)
    await rl.check()
    versions.append(rl.registry.get("greet").version)

    done = 0
    failures: list[BaseException] = []
    seen: set[str] = set()
    stop = asyncio.Event()

    async def client(i: int) -> None:
        nonlocal done
        while not stop.is_set():
            body = {
                "model": "m",
                "messages": [],
                "prompt": {"id": "greet", "variables": {"who": str(i)}},
            }
            try:
                res = await resolve_prompt(body, rl.registry)
                text = res.body["messages"][0]["content"]
                assert text.endswith(f" {i}") and text.startswith("v")
                seen.add(res.headers["x-prompt-version"])
                done += 1
            except BaseException as e:
                failures.append(e)
            await asyncio.sleep(0)

    clients = [asyncio.create_task(client(i)) for i in range(16)]
    for n in range(1, 7):
        if n % 3 == 0:
            repo.write("prompts/greet.yaml", BROKEN)  # every third commit is broken
        else:
            repo.prompt("greet", f"v{n} {{{{ who }}}}")
        repo.commit(f"c{n}")
        await rl.check()
        if n % 3:
            versions.append(rl.registry.get("greet").version)
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*clients)
    assert failures == []
    assert done > 100
    assert seen <= set(versions) and len(seen) >= 2
    assert rl.status().errors_total == 2


async def test_reloader_from_gateway_config(repo: Repo) -> None:
    from types import SimpleNamespace

    from gateway._prompt_resolution import reloader_from_config

    repo.prompt("greet", "committed {{ who }}")
    repo.commit("c")
    repo.prompt("greet", "draft {{ who }}")
    cfg = SimpleNamespace(repo=str(repo.path), dir="prompts", ref="HEAD", reload_interval_s=1)
    git_rl = reloader_from_config(cfg)
    assert await git_rl.check() and content(git_rl.registry) == "committed W"
    cfg.ref = None
    dir_rl = reloader_from_config(cfg)
    assert await dir_rl.check() and content(dir_rl.registry) == "draft W"


async def test_zero_interval_loads_once_and_never_polls(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    f = d / "greet.yaml"
    f.write_text(
        "name: greet\nvariables: {who: {}}\nmessages: [{role: user, content: 'a {{ who }}'}]\n"
    )
    rl = RegistryReloader.for_directory(d, interval=0)
    await rl.start()
    try:
        assert content(rl.registry) == "a W"
        generation = rl.status().generation
        f.write_text(
            "name: greet\nvariables: {who: {}}\nmessages: [{role: user, content: 'b {{ who }}'}]\n"
        )
        os.utime(f, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        await asyncio.sleep(0.3)
        # No poller task at all (a zero-sleep poll would spin a core), so nothing reloads.
        assert rl._task is None
        assert rl.status().generation == generation
    finally:
        await rl.stop()
