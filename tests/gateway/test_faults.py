"""Faulty replicas as real loopback servers: refused connections, 500s, hangs, cut streams."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream, free_port
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, make_config

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def pair() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    a, b = FakeUpstream(name="a").start(), FakeUpstream(name="b").start()
    yield a, b
    a.stop()
    b.stop()


def _client(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)


def test_refused_connection_retried_on_other_replica(pair: tuple[FakeUpstream, ...]) -> None:
    a, _ = pair
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gw = GatewayServer(make_config([dead, a.url], health={"interval_s": 60})).start()
    try:
        c = _client(gw)
        for _ in range(6):
            out = c.chat.completions.create(model="chat", messages=MSG)
            assert "[a]" in (out.choices[0].message.content or "")
        # The dead replica failed its first health check, so it is not even tried; force a try
        # by marking it healthy again and check the retry path.
        for r in gw.gw.state.pools["chat"].replicas:
            r.healthy, r.ejected_until = True, 0.0
        ok = [c.chat.completions.create(model="chat", messages=MSG) for _ in range(4)]
        assert len(ok) == 4
        assert gw.metric_value("llmops_retries_total", model="chat") >= 1
        assert gw.metric_value("llmops_upstream_errors_total", model="chat", reason="connect") >= 1
    finally:
        gw.stop()


def test_all_replicas_down_gives_503_with_retry_after() -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    gw = GatewayServer(make_config(dead, health={"interval_s": 60})).start()
    try:
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "chat", "messages": MSG},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert r.json()["error"]["code"] == "no_healthy_replica"
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["models"]["chat"]["ready"] is False
        # Also when the health checker still believes they are up: connect errors -> 503.
        for rep in gw.gw.state.pools["chat"].replicas:
            rep.healthy, rep.ejected_until = True, 0.0
        with pytest.raises(openai.APIStatusError) as e:
            _client(gw).chat.completions.create(model="chat", messages=MSG)
        assert e.value.status_code == 503
    finally:
        gw.stop()


def test_upstream_error_status_passed_through(pair: tuple[FakeUpstream, ...]) -> None:
    a, _ = pair
    a.mode = "error500"
    gw = GatewayServer(make_config([a.url])).start()
    try:
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "chat", "messages": MSG},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert r.status_code == 500
        assert r.json() == {
            "error": {"message": "boom", "type": "InternalServerError", "code": 500}
        }
    finally:
        gw.stop()


def test_503_retried_once_then_passed_through(pair: tuple[FakeUpstream, ...]) -> None:
    a, b = pair
    a.mode = "error503"
    gw = GatewayServer(make_config([a.url, b.url])).start()
    try:
        c = _client(gw)
        for _ in range(4):
            out = c.chat.completions.create(model="chat", messages=MSG)
            assert "[b]" in (out.choices[0].message.content or "")
        b.mode = "error503"
        for rep in gw.gw.state.pools["chat"].replicas:
            rep.ejected_until = 0.0
        with pytest.raises(openai.InternalServerError) as e:
            c.chat.completions.create(model="chat", messages=MSG)
        assert e.value.status_code == 503
    finally:
        gw.stop()


def test_hanging_replica_times_out(pair: tuple[FakeUpstream, ...]) -> None:
    a, _ = pair
    a.mode = "hang"
    gw = GatewayServer(make_config([a.url], server={"request_timeout_s": 1})).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(openai.APIStatusError) as e:
            _client(gw).chat.completions.create(model="chat", messages=MSG)
        assert e.value.status_code == 504
        assert time.monotonic() - t0 < 10
    finally:
        gw.stop()


def test_truncated_stream_ends_with_error_event(pair: tuple[FakeUpstream, ...]) -> None:
    a, _ = pair
    a.mode = "truncate"
    gw = GatewayServer(make_config([a.url])).start()
    try:
        with pytest.raises(openai.APIError) as e:
            for _ in _client(gw).chat.completions.create(model="chat", messages=MSG, stream=True):
                pass
        assert "mid-stream" in str(e.value) or "early" in str(e.value)
    finally:
        gw.stop()


def test_passive_ejection_after_consecutive_failures(pair: tuple[FakeUpstream, ...]) -> None:
    a, b = pair
    a.mode = "error503"
    gw = GatewayServer(make_config([a.url, b.url], health={"interval_s": 60})).start()
    try:
        c = _client(gw)
        for _ in range(12):
            try:
                c.chat.completions.create(model="chat", messages=MSG)
            except openai.InternalServerError:
                pass
        errors_a = len(a.requests)
        # Threshold 2: after two 503s replica a is ejected; the rest go straight to b.
        assert errors_a <= 3
        assert gw.metric_value("llmops_replica_healthy", model="chat", replica=a.url) == 0
    finally:
        gw.stop()


def test_active_health_check_takes_replica_out(pair: tuple[FakeUpstream, ...]) -> None:
    a, b = pair
    gw = GatewayServer(make_config([a.url, b.url])).start()
    try:
        a.healthy = False
        time.sleep(0.8)
        c = _client(gw)
        for _ in range(6):
            c.chat.completions.create(model="chat", messages=MSG)
        assert len(a.requests) == 0 and len(b.requests) == 6
        a.healthy = True
        time.sleep(0.8)
        assert httpx.get(gw.url + "/readyz").json()["models"]["chat"]["replicas"][0]["healthy"]
    finally:
        gw.stop()


def test_client_disconnect_cancels_upstream(pair: tuple[FakeUpstream, ...]) -> None:
    a, _ = pair
    a.stream_chunks, a.chunk_delay_s = 200, 0.05
    gw = GatewayServer(make_config([a.url])).start()
    try:
        body = b'{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}'
        s = socket.create_connection(("127.0.0.1", gw.port))
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {ADMIN_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        got = b""
        while b"data:" not in got:
            got += s.recv(4096)
        s.close()
        deadline = time.monotonic() + 5
        while a.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert a.cancelled == 1
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if gw.metric_value("llmops_in_flight_requests", model="chat") == 0:
                break
            time.sleep(0.05)
        assert gw.metric_value("llmops_in_flight_requests", model="chat") == 0
    finally:
        gw.stop()


def test_plain_500_does_not_eject(pair: tuple[FakeUpstream, ...]) -> None:
    a, _ = pair
    a.mode = "error500"
    gw = GatewayServer(make_config([a.url], health={"interval_s": 60})).start()
    try:
        c = _client(gw)
        for _ in range(5):
            with pytest.raises(openai.InternalServerError):
                c.chat.completions.create(model="chat", messages=MSG)
        a.mode = "ok"
        assert c.chat.completions.create(model="chat", messages=MSG).choices
        assert gw.metric_value("llmops_upstream_errors_total", reason="status_500") == 5
    finally:
        gw.stop()
