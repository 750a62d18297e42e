"""Cold starts: a model with no ready replica holds requests up to cold_start_timeout_s while
one comes up, says so in a header, exports how many wait, and times out with a clear 503.
The replica is a fake vLLM server (real HTTP) that starts listening while the request waits,
as a Deployment scaled from zero does; the real engine started on demand is in
tests/engine/test_cold_start_engine.py."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from pydantic import ValidationError

from gateway import GatewayConfig
from tests.fakes.openai_upstream import FakeUpstream, free_port
from tests.fakes.servers import GatewayServer


def _config(port: int, timeout_s: float) -> GatewayConfig:
    return GatewayConfig(
        auth={"enabled": False}, prompts=None,
        health={"interval_s": 30, "timeout_s": 1},
        models=[{"name": "chat", "upstreams": [{"url": f"http://127.0.0.1:{port}"}],
                 "cold_start_timeout_s": timeout_s}],
    )  # fmt: skip


def test_a_request_waits_for_the_replica_that_comes_up() -> None:
    port = free_port()
    gw = GatewayServer(_config(port, 20)).start()
    up = FakeUpstream(name="late")
    up.port = port
    try:
        # Cold: the gateway is ready anyway (it holds requests for this model).
        assert httpx.get(gw.url + "/readyz").status_code == 200
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=30)
        result: dict[str, object] = {}

        def ask() -> None:
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
            result["header"] = raw.headers.get("x-llmops-cold-start")
            result["text"] = raw.parse().choices[0].message.content

        t = threading.Thread(target=ask)
        t.start()
        deadline = time.monotonic() + 10
        while gw.metric_value("llmops_cold_start_waiting", model="chat") < 1:
            assert time.monotonic() < deadline, "the request never waited"
            time.sleep(0.05)
        time.sleep(1.0)
        up.start()  # the replica comes up while the request waits
        t.join(30)
        assert not t.is_alive()
        assert result["text"], result
        assert str(result["header"]).startswith("waited ")
        assert float(str(result["header"]).split()[1].rstrip("s")) >= 1.0
        assert gw.metric_value("llmops_cold_start_waiting", model="chat") == 0
        # Warm now: no wait, no header.
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert raw.headers.get("x-llmops-cold-start") is None
    finally:
        gw.stop()
        up.stop()


def test_no_replica_within_the_timeout_is_a_clear_503() -> None:
    gw = GatewayServer(_config(free_port(), 1.0)).start()
    try:
        t0 = time.monotonic()
        r = httpx.post(gw.url + "/v1/chat/completions", timeout=10, json={
            "model": "chat", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert time.monotonic() - t0 >= 0.9
        assert r.status_code == 503 and r.headers["retry-after"] == "10"
        err = r.json()["error"]
        assert err["code"] == "cold_start_timeout" and "within 1 s" in err["message"]
    finally:
        gw.stop()


def test_cold_start_config_errors() -> None:
    up = [{"url": "http://127.0.0.1:1"}]
    with pytest.raises(ValidationError, match="on_first_request starts a local 'engine'"):
        GatewayConfig(models=[{"name": "m", "upstreams": up, "start": "on_first_request",
                               "cold_start_timeout_s": 60}])  # fmt: skip
    with pytest.raises(ValidationError, match="needs cold_start_timeout_s"):
        GatewayConfig(models=[{"name": "m", "engine": {}, "start": "on_first_request"}])
    with pytest.raises(ValidationError, match="cold_start_timeout_s"):
        GatewayConfig(models=[{"name": "m", "upstreams": up, "cold_start_timeout_s": 0}])
