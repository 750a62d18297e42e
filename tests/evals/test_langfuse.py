"""Eval runs reach Langfuse as dataset runs with scores: the real SDK against a loopback fake of
Langfuse's HTTP API (no Langfuse server runs here) that records what arrives."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import web

from evals import MetricSpec, Suite, gate_compare
from evals._langfuse import dataset_name, push_if_configured
from tests.evals.test_stats import _run
from tests.fakes.openai_upstream import free_port
from tests.fakes.threaded_app import ThreadedApp

NOW = "2026-01-01T00:00:00.000Z"


class FakeLangfuse(ThreadedApp):
    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[tuple[str, str, bytes]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.calls.append((request.method, request.path, raw))
        body: dict[str, Any] = {}
        if request.content_type == "application/json" and raw:
            body = orjson.loads(raw)
        p = request.path
        if p.endswith("/datasets") and request.method == "POST":
            return web.json_response(
                {
                    "id": "ds1",
                    "name": body.get("name"),
                    "description": body.get("description"),
                    "metadata": body.get("metadata"),
                    "projectId": "p1",
                    "createdAt": NOW,
                    "updatedAt": NOW,
                }
            )
        if p.endswith("/dataset-items") and request.method == "POST":
            return web.json_response(
                {
                    "id": body.get("id"),
                    "status": "ACTIVE",
                    "input": body.get("input"),
                    "expectedOutput": body.get("expectedOutput"),
                    "metadata": body.get("metadata"),
                    "datasetId": "ds1",
                    "datasetName": body.get("datasetName"),
                    "mediaReferences": [],
                    "createdAt": NOW,
                    "updatedAt": NOW,
                }
            )
        if p.endswith("/projects"):
            return web.json_response({"data": [{"id": "p1", "name": "p", "metadata": {}}]})
        return web.json_response({"successes": [], "errors": []}, status=200)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture()
def fake_langfuse() -> Iterator[FakeLangfuse]:
    f = FakeLangfuse().start()
    yield f
    f.stop()


def _verdict() -> tuple[Suite, Any]:
    suite = Suite(name="lf", dataset="x.jsonl", metrics=[MetricSpec(type="contains")])
    s = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    return suite, gate_compare(suite, _run("base", s), _run("head", s))


def test_push_creates_dataset_items_runs_and_scores(fake_langfuse: FakeLangfuse) -> None:
    from langfuse import Langfuse

    suite, verdict = _verdict()
    client = Langfuse(public_key="pk-lf-test", secret_key="sk-lf-test", base_url=fake_langfuse.url)
    note = push_if_configured(suite, verdict, client=client)
    client.shutdown()
    assert note is not None and note.startswith("langfuse: pushed runs"), note
    paths = [p for _, p, _ in fake_langfuse.calls]
    assert any(p.endswith("/datasets") for p in paths)
    assert sum(p.endswith("/dataset-items") for p in paths) == 5
    # run traces (OTLP) and the per-item scores reach the server
    assert any("otel" in p for p in paths), paths
    sent = b"".join(b for _, _, b in fake_langfuse.calls)
    assert b"contains" in sent and dataset_name(suite).encode() in sent


def test_push_failure_does_not_change_the_verdict() -> None:
    from langfuse import Langfuse

    suite, verdict = _verdict()
    dead = f"http://127.0.0.1:{free_port()}"
    client = Langfuse(public_key="pk-lf-test", secret_key="sk-lf-test", base_url=dead)
    note = push_if_configured(suite, verdict, client=client)
    assert note is not None and "push failed (verdict unaffected)" in note
    assert verdict.passed
