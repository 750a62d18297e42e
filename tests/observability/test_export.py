"""Export over the wire: the Langfuse SDK's OTLP/HTTP exporter against a receiver on loopback,
feedback as a Langfuse score, and a Langfuse that hangs costing requests nothing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from observability import trace_id_for
from tests.observability.conftest import ADMIN_KEY, obs_config
from tests.observability.otlp_receiver import Receiver


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def wait_for(cond: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_traces_and_scores_reach_langfuse_over_http(start_gateway: Any, receiver: Receiver) -> None:
    cfg = obs_config({"langfuse": {"base_url": receiver.url}})
    pk = cfg["tracing"]["langfuse"]["public_key"]
    gw, _ = start_gateway(cfg, in_memory=False)
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": "over the wire"}],
        extra_headers={"x-request-id": "req-wire-1"},
    )
    tid = raw.headers["x-trace-id"]
    assert tid == trace_id_for("req-wire-1")
    fb = httpx.post(
        gw.url + "/v1/feedback",
        json={"request_id": "req-wire-1", "score": 1, "comment": "great"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert fb.status_code == 200, fb.text
    assert fb.json()["trace_id"] == tid
    gw.gw.observability.flush()
    wait_for(lambda: any(s["trace_id"] == tid for s in receiver.spans))
    wait_for(lambda: any(s.get("traceId") == tid for s in receiver.scores))
    (gen,) = [s for s in receiver.spans if s["trace_id"] == tid]  # a plain request: one span
    assert gen["name"] == "chat:chat" and gen["parent_span_id"] == ""
    assert gen["scope"] == "langfuse-sdk"
    attrs = gen["attributes"]
    assert attrs["langfuse.observation.type"] == "generation"
    assert attrs["langfuse.observation.output"] == "[a] echo: over the wire"
    assert attrs["langfuse.trace.name"] == "chat"
    assert json.loads(attrs["langfuse.observation.metadata"])["status"] == 200
    assert gen["end"] >= gen["start"] > 0
    expected_auth = "Basic " + base64.b64encode(f"{pk}:sk-test".encode()).decode()
    assert expected_auth in receiver.auth
    score = next(s for s in receiver.scores if s.get("traceId") == tid)
    assert score["name"] == "user-feedback"
    assert score["value"] == 1.0
    assert score["dataType"] == "NUMERIC"
    assert score["comment"] == "great"
    assert score["metadata"]["request_id"] == "req-wire-1"


def test_hanging_langfuse_costs_requests_nothing(start_gateway: Any) -> None:
    """The receiver accepts the export connection and never answers: the SDK's exporter thread
    is stuck in its POST while every request completes normally."""
    dead = Receiver(mode="hang").start()
    try:
        cfg = obs_config(
            {
                "langfuse": {
                    "base_url": dead.url,
                    "flush_interval_s": 0.05,
                    "flush_at": 1,
                    "timeout_s": 30,
                }
            }
        )
        gw, _ = start_gateway(cfg, in_memory=False)
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "1"}])
        wait_for(lambda: dead.pending >= 1)  # an export is now hanging
        latencies = []
        for i in range(30):
            t0 = time.perf_counter()
            raw = c.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": f"m{i}"}]
            )
            latencies.append(time.perf_counter() - t0)
            assert raw.status_code == 200 and raw.headers["x-trace-id"]
        stream = c.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "s"}], stream=True
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
        assert dead.pending >= 1  # still hanging: none of the requests waited for it
        lat = sorted(latencies)
        print(
            f"\nrequests while Langfuse hangs: p50 {lat[15] * 1e3:.1f} ms, "
            f"max {lat[-1] * 1e3:.1f} ms (export timeout 30 s)"
        )
        obs = gw.gw.observability
        # every request was handed to tracing (the trace worker is stuck in its export; what
        # does not fit behind it is dropped and counted, never waited for)
        assert obs.tracer.queued + obs.tracer.dropped >= 32
        assert obs.tracer.worker_pid is not None
        t0 = time.perf_counter()
        gw.stop()  # shutdown is bounded even though the exporter is stuck
        took = time.perf_counter() - t0
        print(f"gateway shutdown with a hanging Langfuse took {took:.1f} s")
        assert took < 15
    finally:
        dead.stop()


def test_refused_connection_costs_requests_nothing(start_gateway: Any) -> None:
    from tests.fakes.openai_upstream import free_port

    cfg = obs_config(
        {
            "langfuse": {
                "base_url": f"http://127.0.0.1:{free_port()}",
                "flush_interval_s": 0.05,
                "flush_at": 1,
            }
        }
    )
    gw, _ = start_gateway(cfg, in_memory=False)
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    for i in range(20):
        r = c.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": f"x{i}"}]
        )
        assert r.status_code == 200
    fb = httpx.post(
        gw.url + "/v1/feedback",
        json={"trace_id": "a" * 32, "score": -1},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert fb.status_code == 200
    assert gw.gw.observability.tracer.failed == 0


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"score": 1}, 400, None),
        ({"request_id": "a", "trace_id": "b" * 32, "score": 1}, 400, None),
        ({"trace_id": "xyz", "score": 1}, 400, "trace_id"),
        ({"request_id": "a", "score": 5}, 400, "score"),
        ({"request_id": "a", "score": float("nan")}, 400, None),
        ({"request_id": "a"}, 400, "score"),
        ({"request_id": "a", "score": 1, "name": "bad name!"}, 400, "name"),
        ({"request_id": "a", "score": 1, "extra": 1}, 400, "extra"),
        ({"request_id": "a", "score": 1, "comment": "x" * 5000}, 400, "comment"),
        ([1, 2], 400, None),
    ],
)
def test_feedback_errors_are_openai_shaped(
    start_gateway: Any, body: Any, status: int, param: str | None
) -> None:
    gw, _ = start_gateway(obs_config())
    hdr = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    import orjson

    try:
        content = orjson.dumps(body)
    except TypeError:
        content = b'{"request_id": "a", "score": NaN}'
    if isinstance(body, dict) and body.get("score") != body.get("score"):
        content = b'{"request_id": "a", "score": NaN}'
    r = httpx.post(gw.url + "/v1/feedback", content=content, headers=hdr)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param


def test_feedback_auth_and_kinds(start_gateway: Any) -> None:
    gw, _ = start_gateway(obs_config())
    r = httpx.post(gw.url + "/v1/feedback", json={"request_id": "a", "score": 1})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = httpx.post(
        gw.url + "/v1/feedback", content=b"{nope", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert r.status_code == 400
    hdr = {"authorization": f"Bearer {ADMIN_KEY}"}
    for score, kind in ((True, "BOOLEAN"), ("thumbs-down", "CATEGORICAL"), (0.5, "NUMERIC")):
        r = httpx.post(
            gw.url + "/v1/feedback", json={"request_id": "r1", "score": score}, headers=hdr
        )
        assert r.status_code == 200, r.text
        assert r.json()["data_type"] == kind
        assert r.json()["trace_id"] == trace_id_for("r1")


def test_feedback_without_tracing_is_503(start_gateway: Any, tmp_path: Any) -> None:
    gw, _ = start_gateway(
        {
            "tracing": {"enabled": False},
            "drift": {"enabled": True, "embed": False, "dir": str(tmp_path)},
        }
    )
    r = httpx.post(
        gw.url + "/v1/feedback",
        json={"request_id": "a", "score": 1},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert r.status_code == 503 and r.json()["error"]["code"] == "tracing_disabled"


def test_a_killed_trace_worker_is_replaced(start_gateway: Any, receiver: Receiver) -> None:
    """Spans are built in a worker process; when it dies the next batch starts a new one."""
    import os
    import signal

    gw, _ = start_gateway(obs_config({"langfuse": {"base_url": receiver.url}}), in_memory=False)
    tracer = gw.gw.observability.tracer
    first = tracer.worker_pid
    assert first is not None and first != os.getpid()
    os.kill(first, signal.SIGKILL)
    time.sleep(1.2)  # new workers start at most once a second
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    for i in range(3):
        raw = c.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": f"after the kill {i}"}],
            extra_headers={"x-request-id": f"req-respawn-{i}"},
        )
        assert raw.status_code == 200
    gw.gw.observability.flush()
    wanted = {trace_id_for(f"req-respawn-{i}") for i in range(3)}
    wait_for(lambda: wanted <= {s["trace_id"] for s in receiver.spans})
    assert tracer.worker_pid not in (None, first)
    assert tracer.dropped == 0
