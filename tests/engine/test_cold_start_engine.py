"""An engine started on demand: the gateway starts without it (``start: on_first_request``),
the first request launches the real vLLM CPU engine and waits for it, and is answered."""

from __future__ import annotations

import time

import openai
import pytest

from tests.engine.conftest import (
    ENGINE_KEY,
    MODEL,
    engine_spec,
    gateway_config,
    require_prepared_engine,
)
from tests.fakes.servers import GatewayServer

pytestmark = pytest.mark.engine


def test_the_request_that_wakes_the_engine_is_answered() -> None:
    require_prepared_engine()
    cfg = gateway_config([{
        "name": "lazy", "served_name": MODEL, "engine": engine_spec().model_dump(),
        "start": "on_first_request", "cold_start_timeout_s": 900,
    }])  # fmt: skip
    t0 = time.monotonic()
    gw = GatewayServer(cfg).start(timeout=60)  # no engine to wait for at start-up
    started_in = time.monotonic() - t0
    try:
        assert gw.gw.engines == [] and started_in < 60
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=ENGINE_KEY, max_retries=0,
                               timeout=960)  # fmt: skip
        t1 = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(
            model="lazy", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8,
            temperature=0,
        )  # fmt: skip
        waited = time.monotonic() - t1
        answer = raw.parse()
        print(f"\ngateway up in {started_in:.1f} s; first request answered after {waited:.1f} s "
              f"(header: {raw.headers.get('x-llmops-cold-start')})")  # fmt: skip
        assert answer.choices[0].message.content
        assert raw.headers["x-llmops-cold-start"].startswith("waited ")
        assert len(gw.gw.engines) == 1
        assert gw.metric_value("llmops_engine_starts_total", model="lazy") == 1
        # The second request finds it running.
        again = client.chat.completions.with_raw_response.create(
            model="lazy", messages=[{"role": "user", "content": "Say hi."}], max_tokens=4
        )
        assert again.headers.get("x-llmops-cold-start") is None
    finally:
        gw.stop()
