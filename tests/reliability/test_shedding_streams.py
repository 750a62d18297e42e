"""Load shedding (bounded queue per model, vLLM queue scraping) and stream timeouts."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.reliability.conftest import KEY_C, MSG, auth, config_dict, start_gateway
from tests.reliability.fakes import SlowUpstream

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def _burst(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as c:
        return list(
            await asyncio.gather(
                *(
                    c.post(
                        url + "/v1/chat/completions",
                        headers=auth(KEY_C),
                        json={"model": "chat", "messages": MSG},
                    )
                    for _ in range(n)
                )
            )
        )


def test_saturated_replicas_shed_with_503_and_queue_is_bounded() -> None:
    a, b = (
        SlowUpstream(name="a", latency_s=1.0).start(),
        SlowUpstream(name="b", latency_s=1.0).start(),
    )
    cfg = config_dict(
        [a.url, b.url],
        limits={
            "shedding": {
                "enabled": True,
                "replica_capacity": 2,
                "queue_size": 3,
                "queue_timeout_s": 10,
            }
        },
    )
    gw = start_gateway(cfg)
    try:
        rs = asyncio.run(_burst(gw.url, 20))
        codes = [r.status_code for r in rs]
        # 4 in flight (2 replicas x 2) + 3 queued are served; 13 shed at once.
        assert codes.count(200) == 7 and codes.count(503) == 13, codes
        shed = next(r for r in rs if r.status_code == 503)
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["error"]["code"] == "model_overloaded"
        assert max(a.peak, b.peak) <= 2
        assert gw.metric_value("llmops_shed_total") == 13
        # A replica going unhealthy halves the capacity.
        a.peak = b.peak = 0
        a.healthy = False
        time.sleep(1.5)  # two failed checks (threshold 2) at 0.3 s intervals
        codes = [r.status_code for r in asyncio.run(_burst(gw.url, 10))]
        assert codes.count(200) == 5 and a.peak == 0  # 2 in flight + 3 queued
    finally:
        gw.stop()
        a.stop()
        b.stop()


def test_queue_timeout_and_vllm_waiting_scrape() -> None:
    a = SlowUpstream(name="a", latency_s=1.5).start()
    cfg = config_dict(
        [a.url],
        limits={
            "shedding": {
                "enabled": True,
                "replica_capacity": 1,
                "queue_size": 5,
                "queue_timeout_s": 0.3,
                "max_waiting": 4,
                "scrape_interval_s": 0.2,
            }
        },
    )
    gw = start_gateway(cfg)
    try:
        codes = [r.status_code for r in asyncio.run(_burst(gw.url, 3))]
        assert sorted(codes) == [200, 503, 503]  # the queued ones waited 0.3 s, then 503
        a.latency_s = 0
        a.waiting = 10  # vLLM says its own queue is long: take nothing new
        time.sleep(0.6)
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            headers=auth(KEY_C),
            json={"model": "chat", "messages": MSG},
            timeout=10,
        )
        assert r.status_code == 503
        a.waiting = 0
        time.sleep(0.6)
        assert asyncio.run(_burst(gw.url, 1))[0].status_code == 200
    finally:
        gw.stop()
        a.stop()


def _stream_text(gw_url: str) -> tuple[str, float]:
    t0 = time.monotonic()
    with httpx.stream(
        "POST",
        gw_url + "/v1/chat/completions",
        headers=auth(KEY_C),
        timeout=30,
        json={"model": "chat", "messages": MSG, "stream": True},
    ) as s:
        assert s.status_code == 200
        return s.read().decode(), time.monotonic() - t0


def test_stream_stalls_end_with_an_error_event() -> None:
    a = SlowUpstream(name="a", mode="stall_mid").start()
    cfg = config_dict([a.url], server={"first_byte_timeout_s": 1, "chunk_timeout_s": 0.5})
    gw = start_gateway(cfg)
    try:
        text, took = _stream_text(gw.url)
        assert "w0" in text and "w1" in text and '"code":"upstream_timeout"' in text
        assert "next chunk" in text and took < 5
        a.mode = "stall_headers"
        text, took = _stream_text(gw.url)
        assert "first chunk" in text and '"error"' in text and took < 5
        # The official SDK raises on the error event rather than ending quietly.
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY_C, max_retries=0)
        try:
            for _ in c.chat.completions.create(model="chat", messages=MSG, stream=True):  # type: ignore[arg-type]
                pass
            raise AssertionError("expected an error")
        except openai.APIError as e:
            assert "first chunk" in str(e)
    finally:
        gw.stop()
        a.stop()


def test_stream_to_hanging_replica_fails_over_before_first_byte() -> None:
    hang, ok = SlowUpstream(name="hang", mode="hang").start(), SlowUpstream(name="ok").start()
    cfg = config_dict(
        [hang.url, ok.url], server={"first_byte_timeout_s": 0.5}, health={"interval_s": 60}
    )
    gw = start_gateway(cfg)
    try:
        for _ in range(4):
            text, took = _stream_text(gw.url)
            assert "[DONE]" in text and "[ok]" in text and took < 3
        # Non-streamed requests to a hanging replica end with 504 at request_timeout_s.
    finally:
        gw.stop()
        hang.stop()
        ok.stop()
