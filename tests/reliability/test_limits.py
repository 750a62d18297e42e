"""Rate limits and quotas on one gateway (in-memory counters), through real HTTP."""

from __future__ import annotations

import concurrent.futures as cf
import time

import httpx
import openai
import pytest

from gateway.limits._plan import format_duration, window
from tests.reliability.conftest import KEY_A, KEY_B, KEY_C, MSG, auth, config_dict, start_gateway
from tests.reliability.fakes import SlowUpstream

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _post(url: str, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": "chat", "messages": MSG, **body},
        headers=auth(key),
        timeout=30,
    )


def test_requests_per_minute_429_with_openai_headers(upstream: SlowUpstream) -> None:
    cfg = config_dict([upstream.url], limits={"default": {"requests_per_minute": 3}})
    gw = start_gateway(cfg)
    try:
        ok = [_post(gw.url, KEY_C) for _ in range(3)]
        assert [r.status_code for r in ok] == [200, 200, 200]
        assert ok[0].headers["x-ratelimit-limit-requests"] == "3"
        assert ok[0].headers["x-ratelimit-remaining-requests"] == "2"
        assert ok[2].headers["x-ratelimit-remaining-requests"] == "0"
        assert ok[2].headers["x-ratelimit-reset-requests"].endswith("s")
        r = _post(gw.url, KEY_C)
        assert r.status_code == 429
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        # 3 per minute refills one request every 20 s.
        assert 1 <= int(r.headers["retry-after"]) <= 20
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        # Another key has its own bucket.
        assert _post(gw.url, KEY_A).status_code == 200
        # The official SDK sees a RateLimitError.
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY_C, max_retries=0)
        try:
            c.chat.completions.create(model="chat", messages=MSG)  # type: ignore[arg-type]
            raise AssertionError("expected 429")
        except openai.RateLimitError as e:
            assert e.status_code == 429
        assert len(upstream.requests) == 4  # refused requests never reached the replica
    finally:
        gw.stop()


def test_tokens_reserved_then_reconciled_from_usage(upstream: SlowUpstream) -> None:
    # Estimate = body bytes / 4 + max_tokens (~ 20 + 500); real usage is 12 tokens.
    cfg = config_dict([upstream.url], limits={"default": {"tokens_per_minute": 1000}})
    gw = start_gateway(cfg)
    try:
        first = _post(gw.url, KEY_C, max_tokens=500)
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-tokens"] == "1000"
        reserved = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])
        assert 500 < reserved < 560
        # Sequential requests fit because each one's unused reservation is given back.
        for _ in range(20):
            assert _post(gw.url, KEY_C, max_tokens=500).status_code == 200
        # Concurrent ones do not: two reservations of ~520 exceed 1000.
        upstream.latency_s = 1.5
        with cf.ThreadPoolExecutor(4) as ex:
            codes = [
                r.status_code
                for r in ex.map(lambda _: _post(gw.url, KEY_C, max_tokens=500), range(4))
            ]
        assert upstream.peak == 1 and codes.count(429) >= 2 and set(codes) <= {200, 429}
        # A request alone larger than the limit is refused as too large, not "wait".
        r = _post(gw.url, KEY_C, max_tokens=5000)
        assert r.status_code == 429 and r.json()["error"]["code"] == "request_too_large"
    finally:
        gw.stop()


def test_concurrency_limit_and_release_on_every_path(upstream: SlowUpstream) -> None:
    cfg = config_dict([upstream.url], limits={"default": {"max_concurrent": 2}})
    gw = start_gateway(cfg)
    try:
        upstream.latency_s = 1.5
        with cf.ThreadPoolExecutor(6) as ex:
            codes = [r.status_code for r in ex.map(lambda _: _post(gw.url, KEY_C), range(6))]
        # Never more than 2 at the replica; the rest refused (a late thread may find a slot).
        assert upstream.peak == 2
        assert codes.count(200) >= 2 and codes.count(429) >= 3 and set(codes) <= {200, 429}
        upstream.latency_s = 0
        # Slots come back after success, upstream error and streams.
        upstream.mode = "error500"
        for _ in range(3):
            assert _post(gw.url, KEY_C).status_code in (500, 503)  # 503 once ejected
        upstream.mode = "ok"
        time.sleep(1.2)  # ejection backoff
        for _ in range(3):
            with httpx.stream(
                "POST",
                gw.url + "/v1/chat/completions",
                headers=auth(KEY_C),
                json={"model": "chat", "messages": MSG, "stream": True},
            ) as s:
                assert s.status_code == 200
                assert b"[DONE]" in s.read()
        assert [_post(gw.url, KEY_C).status_code for _ in range(3)] == [200] * 3
    finally:
        gw.stop()


def test_stream_slot_is_free_when_the_client_reads_done(upstream: SlowUpstream) -> None:
    """A client may act on [DONE] before the body ends (the openai SDK stops there). Its next
    request must find the slot free and the stream counted: the gateway settles a stream
    (slot, usage, metrics, trace) before it relays the [DONE]."""
    cfg = config_dict([upstream.url], limits={"default": {"max_concurrent": 1}})
    gw = start_gateway(cfg)
    upstream.eof_delay_s = 0.5  # the body ends well after its [DONE]
    try:
        for i in range(3):
            body = {"model": "chat", "messages": MSG, "stream": True}
            with httpx.stream(
                "POST", gw.url + "/v1/chat/completions", headers=auth(KEY_C), json=body
            ) as s:
                assert s.status_code == 200
                lines = []
                for line in s.iter_lines():
                    lines.append(line)
                    if line == "data: [DONE]":
                        break
                # the first stream's body has not ended yet: its slot must already be free
                assert gw.metric_value("llmops_in_flight_requests", model="chat") == 0
                assert (
                    gw.metric_value("llmops_requests_total", model="chat", status=200) == 2 * i + 1
                )
                assert _post(gw.url, KEY_C).status_code == 200, i
    finally:
        gw.stop()


def test_team_limit_shared_by_its_keys(upstream: SlowUpstream) -> None:
    cfg = config_dict([upstream.url], limits={"teams": {"ml": {"requests_per_minute": 4}}})
    gw = start_gateway(cfg)
    try:
        codes = [_post(gw.url, k).status_code for k in (KEY_A, KEY_B, KEY_A, KEY_B, KEY_A, KEY_B)]
        assert codes == [200, 200, 200, 200, 429, 429]
        r = _post(gw.url, KEY_A)
        assert "team 'ml'" in r.json()["error"]["message"]
        assert _post(gw.url, KEY_C).status_code == 200  # carol has no team
    finally:
        gw.stop()


def test_token_budget_per_period_is_exact(upstream: SlowUpstream) -> None:
    # Each request: estimate ~ body/4 + 1 reserved, 12 charged (fake usage).
    cfg = config_dict(
        [upstream.url],
        auth={
            "keys": [
                {
                    "name": "carol",
                    "sha256": __import__("gateway").hash_key(KEY_C),
                    "limits": {"token_budget": 100, "budget_period": "month"},
                }
            ]
        },
    )
    gw = start_gateway(cfg)
    try:
        codes = [_post(gw.url, KEY_C, max_tokens=1).status_code for _ in range(10)]
        ok = codes.count(200)
        # 12 tokens each; the n-th is admitted while 12*(n-1) + estimate <= 100.
        est = (
            1
            + len(b'{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1}')
            // 4
        )
        assert ok == max(n for n in range(1, 10) if 12 * (n - 1) + est <= 100)
        r = _post(gw.url, KEY_C, max_tokens=1)
        assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
        _, left = window("month")
        assert abs(int(r.headers["retry-after"]) - left) < 5
    finally:
        gw.stop()


def test_key_limits_override_default_and_no_limits_means_no_headers(upstream: SlowUpstream) -> None:
    cfg = config_dict([upstream.url])
    gw = start_gateway(cfg)
    try:
        r = _post(gw.url, KEY_A)
        assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
    finally:
        gw.stop()


def test_duration_format() -> None:
    assert format_duration(0.02) == "20ms"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(360) == "6m0s"
    t0 = time.time()
    wid, left = window("day", t0)
    assert 0 < left <= 86400 and wid == str(int(t0 // 86400))
