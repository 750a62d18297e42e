"""Model variants on real CPU engines: two engines behind one alias, a promotion that holds at
50%, a fault injected into the new variant, and the gateway's own rollback.

The second engine serves the same SmolLM2 weights under another name (``V2``): a second model
doubles the memory and the start-up time on this 2-core host, and the mechanics under test
(split, stickiness, override, metrics, guard, rollback) do not depend on which weights answer.
The fault comes from a pass-through proxy in front of engine B (tests/fakes/fault_proxy.py),
since a vLLM engine cannot be made to answer 500 on demand.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from engine import EngineManager
from evals import ModelGateRecord, write_model_gate
from gateway import hash_key, load_config
from rollout import PromotionError, VariantAdmin, promote
from tests.engine.conftest import ENGINE_KEY, MODEL, engine_spec, require_prepared_engine
from tests.fakes.fault_proxy import FaultProxy
from tests.fakes.servers import GatewayServer
from tests.variants._support import write_config

pytestmark = pytest.mark.engine
ADMIN = "sk-engine-admin"
QUESTION = [{"role": "user", "content": "What is the capital of France? One word."}]
WINDOW_S = 8.0


@pytest.fixture(scope="module")
async def engine_b() -> AsyncIterator[EngineManager]:
    require_prepared_engine()
    b = EngineManager("variant-b", MODEL, engine_spec(), progress=False)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@pytest.fixture()
def rollout(
    engine: Any, engine_b: EngineManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    proxy = FaultProxy(target=engine_b.base_url).start()
    cfg: dict[str, Any] = {
        "server": {"request_timeout_s": 120, "connect_timeout_s": 2},
        "auth": {"admin_sha256": hash_key(ADMIN),
                 "keys": [{"name": "test", "sha256": hash_key(ENGINE_KEY)}]},
        "health": {"interval_s": 0.5, "failure_threshold": 1000},
        "models": [
            {"name": "smollm2-v1", "served_name": MODEL, "upstreams": [{"url": engine.base_url}]},
            {"name": "smollm2-v2", "served_name": MODEL, "upstreams": [{"url": proxy.url}]},
            {"name": "chat",
             "variants": [{"model": "smollm2-v1", "weight": 50},
                          {"model": "smollm2-v2", "weight": 50}],
             "guard": {"window_s": WINDOW_S, "check_interval_s": 0.5, "min_requests": 6,
                       "max_p95_latency_ratio": 20}},
        ],
        "limits": {"enabled": False},
        "prompts": None,
        "variants": {"state_file": str(tmp_path / "state.json"),
                     "events_file": str(tmp_path / "events.jsonl")},
    }  # fmt: skip
    path = write_config(tmp_path / "gateway.yaml", cfg)
    gw = GatewayServer(load_config(path)).start()
    try:
        yield gw, proxy
    finally:
        gw.stop()
        proxy.stop()


def _metric(gw: GatewayServer, name: str, **labels: str) -> float:
    return gw.metric_value(name, **labels)


async def test_two_engines_split_stick_and_are_measured_by_variant(rollout: Any) -> None:
    gw, _ = rollout
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=ENGINE_KEY, max_retries=0)

    async def ask(**kw: Any) -> tuple[str, str]:
        r = await c.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION, max_tokens=8, temperature=0, **kw
        )
        return r.headers["x-llmops-variant"], r.parse().choices[0].message.content or ""

    served = {}
    for i in range(16):
        variant, answer = await ask(user=f"user-{i}")
        assert "Paris" in answer
        served[f"user-{i}"] = variant
    assert set(served.values()) == {"smollm2-v1", "smollm2-v2"}
    for user, variant in list(served.items())[:6]:
        assert (await ask(user=user))[0] == variant  # sticky
    forced = Counter(
        [(await ask(extra_headers={"x-llmops-variant": "smollm2-v2"}))[0] for _ in range(4)]
    )
    assert forced == {"smollm2-v2": 4}
    for v in ("smollm2-v1", "smollm2-v2"):
        assert _metric(gw, "llmops_variant_requests_total", alias="chat", variant=v,
                       status="200") > 0  # fmt: skip
        assert _metric(gw, "llmops_variant_request_duration_seconds_count", variant=v) > 0


async def test_promotion_holds_at_50_and_a_fault_rolls_back_with_no_failures_after(
    rollout: Any,
) -> None:
    gw, proxy = rollout
    h = {"authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient() as http:
        r = await http.put(
            gw.url + "/admin/variants/chat",
            json={"weights": {"smollm2-v1": 100, "smollm2-v2": 0}},
            headers=h,
        )
    assert r.status_code == 200
    # The offline gate's pass, as `llmops eval compare --base-model smollm2-v1 --head-model
    # smollm2-v2` records it (tests/evals cover that command writing it).
    write_model_gate(
        ModelGateRecord(
            base_model="smollm2-v1",
            head_model="smollm2-v2",
            passed=True,
            exit_code=0,
            commit="HEAD",
            suites=[],
        )
    )
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=ENGINE_KEY, max_retries=0)
    outcomes: list[tuple[float, bool, str]] = []  # (time the request was sent, ok, variant)
    stop = asyncio.Event()

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            sent = time.monotonic()
            try:
                r = await c.chat.completions.with_raw_response.create(
                    model="chat", messages=QUESTION, max_tokens=4, temperature=0,
                    user=f"c{n}-{i % 13}",
                )  # fmt: skip
                outcomes.append((sent, True, r.headers["x-llmops-variant"]))
            except openai.APIStatusError as e:
                outcomes.append((sent, False, e.response.headers.get(
                    "x-llmops-variant", "?")))  # fmt: skip

    said: list[str] = []
    errors: list[BaseException] = []
    admin = VariantAdmin(gw.url, ADMIN)

    def run_promotion() -> None:
        try:
            promote(admin, "chat", "smollm2-v2", [50, 100], hold_s=600, poll_s=0.25,
                    say=said.append)  # fmt: skip
        except PromotionError as e:
            errors.append(e)

    clients = [asyncio.create_task(client(n)) for n in range(3)]
    thread = threading.Thread(target=run_promotion, daemon=True)
    thread.start()
    # Hold at 50% until v2 has answered enough for the guard to read it as fine.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        st = admin.status("chat")
        v2 = next(v for v in st["variants"] if v["model"] == "smollm2-v2")
        if v2["weight"] == 50 and (v2["guard"] or {}).get("status") == "ok":
            break
        await asyncio.sleep(0.25)
    else:
        raise AssertionError(f"the guard never read v2 as ok at 50%: {st}")
    ok_before = sum(1 for _, ok, v in outcomes if ok and v == "smollm2-v2")
    assert ok_before >= 6 and all(ok for _, ok, _ in outcomes)
    proxy.mode = "error500"
    t_fault = time.monotonic()
    while time.monotonic() - t_fault < 4 * WINDOW_S:
        st = admin.status("chat")
        if next(v for v in st["variants"] if v["model"] == "smollm2-v2")["weight"] == 0:
            break
        await asyncio.sleep(0.1)
    t_rollback = time.monotonic()
    took = t_rollback - t_fault
    await asyncio.sleep(5)  # traffic keeps flowing after the rollback
    stop.set()
    await asyncio.gather(*clients)
    await asyncio.to_thread(thread.join, 30)
    assert took <= 2 * WINDOW_S, f"rollback took {took:.1f}s (> two guard windows)"
    assert errors and "rolled smollm2-v2 back at 50%" in str(errors[0]), said
    failures = [t for t, ok, _ in outcomes if not ok]
    assert failures, "the fault reached some clients before the guard acted"
    # Failed requests were all sent before the rollback (the 0.1 s poll of its status aside);
    # every request sent after it was answered, by v1.
    assert all(t <= t_rollback + 0.2 for t in failures), "failures after the rollback"
    after = [(ok, v) for t, ok, v in outcomes if t > t_rollback + 0.2]
    assert after and set(after) == {(True, "smollm2-v1")}
    st = admin.status("chat")
    v2 = next(v for v in st["variants"] if v["model"] == "smollm2-v2")
    assert v2["rolled_back"]["reason"] == "error_rate"
    assert _metric(gw, "llmops_variant_guard_breaches_total", variant="smollm2-v2") == 1
    print(f"\nrollback {took:.2f}s after the fault; {len(failures)} failed requests, "
          f"{len(outcomes)} in all")  # fmt: skip
