"""Every way a request ends gives its replica slot back exactly once: plain answers, streams
(settled before their [DONE]), retries and failover, upstream errors, broken streams and
clients that leave."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import orjson
import pytest

from gateway import _proxy as proxy_module
from gateway._app import GatewayApp
from gateway._proxy import ReplicaLease
from gateway._replicas import Replica
from tests.fakes.servers import GatewayServer
from tests.gateway.conftest import ADMIN_KEY, make_config
from tests.reliability.fakes import SlowUpstream

MSG = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


class CountingLease(ReplicaLease):
    made: list[CountingLease] = []

    def __init__(self, replica: Replica, metrics: Any) -> None:
        super().__init__(replica, metrics)
        self.released = 0
        CountingLease.made.append(self)

    def release(self) -> None:
        if self.held:
            self.released += 1
        super().release()


@pytest.fixture(autouse=True)
def leases(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CountingLease]]:
    CountingLease.made = []
    monkeypatch.setattr(proxy_module, "ReplicaLease", CountingLease)
    yield CountingLease.made


@pytest.fixture()
def pair() -> Iterator[tuple[SlowUpstream, SlowUpstream]]:
    a, b = SlowUpstream(name="a").start(), SlowUpstream(name="b").start()
    yield a, b
    a.stop()
    b.stop()


def _start(urls: list[str], **server: Any) -> GatewayServer:
    over: dict[str, Any] = {"health": {"interval_s": 60}}
    if server:
        over["server"] = server
    return GatewayServer(make_config(urls, **over)).start()


def _settled(gw: GatewayServer, leases: list[CountingLease], n: int, wait: float = 3) -> None:
    """``n`` leases were taken and each was released exactly once; no replica holds a slot."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(lease.held for lease in leases):
        time.sleep(0.02)
    assert len(leases) == n
    assert [lease.released for lease in leases] == [1] * n
    assert all(r.in_flight == 0 for p in gw.gw.state.pools.values() for r in p.replicas)
    assert gw.metric_value("llmops_in_flight_requests") == 0


def _chat(gw: GatewayServer, **extra: Any) -> httpx.Response:
    body = {"model": "chat", "messages": MSG, **extra}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=10)


def test_plain_and_error_answers(pair: tuple[SlowUpstream, ...], leases: list[Any]) -> None:
    a, _ = pair
    gw = _start([a.url], request_timeout_s=1)
    try:
        assert _chat(gw).status_code == 200
        a.mode = "error500"
        assert _chat(gw).status_code == 500
        a.mode = "hang"
        assert _chat(gw).status_code == 504
        _settled(gw, leases, 3)
    finally:
        gw.stop()


@pytest.mark.parametrize("mode", ["error503", "garbage", "down"])
def test_retry_on_the_other_replica(
    pair: tuple[SlowUpstream, ...], leases: list[Any], mode: str
) -> None:
    a, b = pair
    gw = _start([a.url, b.url])
    try:
        if mode == "down":
            a.stop()  # still healthy for the gateway: the next connect is refused
        else:
            a.mode = mode
        statuses = [_chat(gw).status_code for _ in range(4)]
        assert statuses == [200] * 4
        # Every request that went to a first was retried on b: two leases for it.
        tried_a = sum(1 for lease in leases if lease.replica.url == a.url)
        assert tried_a >= 1
        _settled(gw, leases, 4 + tried_a)
    finally:
        gw.stop()


def test_stream_settles_before_done(pair: tuple[SlowUpstream, ...], leases: list[Any]) -> None:
    a, _ = pair
    a.eof_delay_s = 0.5  # the body ends well after its [DONE]
    gw = _start([a.url])
    try:
        body = {"model": "chat", "messages": MSG, "stream": True}
        url = gw.url + "/v1/chat/completions"
        with httpx.stream("POST", url, json=body, headers=AUTH) as s:
            for line in s.iter_lines():
                if line == "data: [DONE]":
                    break
            # The upstream's body has not ended: the slot must already be back.
            assert [lease.released for lease in leases] == [1]
            assert gw.gw.state.pools["chat"].replicas[0].in_flight == 0
        _settled(gw, leases, 1)
    finally:
        gw.stop()


@pytest.mark.parametrize("mode", ["truncate", "stall_mid", "stall_headers"])
def test_broken_streams(pair: tuple[SlowUpstream, ...], leases: list[Any], mode: str) -> None:
    a, _ = pair
    a.mode = mode
    gw = _start([a.url], chunk_timeout_s=0.3, first_byte_timeout_s=0.5)
    try:
        body = {"model": "chat", "messages": MSG, "stream": True}
        r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=10)
        assert r.status_code == 200 and '"error"' in r.text
        _settled(gw, leases, 1)
    finally:
        gw.stop()


def test_client_leaving_mid_stream(pair: tuple[SlowUpstream, ...], leases: list[Any]) -> None:
    a, _ = pair
    a.stream_chunks, a.chunk_delay_s = 200, 0.05
    gw = _start([a.url])
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
        _settled(gw, leases, 1)
        assert gw.metric_value("llmops_requests_total", status=499) == 1
    finally:
        gw.stop()


def test_client_gone_when_the_server_send_fails(
    pair: tuple[SlowUpstream, ...], leases: list[Any]
) -> None:
    """An ASGI 2.4 server raises from ``send`` once the client is gone, and Starlette leaves the
    relay suspended: the response closes it, so the slot is back (and the request counted as a
    disconnect) when the call returns, not whenever the generator is collected."""
    a, _ = pair
    a.stream_chunks, a.chunk_delay_s = 50, 0.02
    gw = GatewayApp(make_config([a.url], health={"interval_s": 60}))
    body = orjson.dumps({"model": "chat", "messages": MSG, "stream": True})
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", AUTH["authorization"].encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and len(sent) > 2:
            raise OSError("client gone")

    async def run() -> None:
        async with gw.app.router.lifespan_context(gw.app):
            with pytest.raises(Exception):  # noqa: B017 - Starlette's ClientDisconnect
                await gw.app(scope, receive, send)
            assert [lease.released for lease in leases] == [1]
            assert gw.state.pools["chat"].replicas[0].in_flight == 0

    asyncio.run(run())
    assert sent[0]["status"] == 200
    requests = gw.state.metrics.requests.labels(model="chat", route="chat", status="499")
    assert requests._value.get() == 1
