"""`llmops ab report` with the monitor's online judge scores, read through the Langfuse SDK
from a loopback stand-in of Langfuse's ``GET /api/public/v3/scores`` (two pages), and joined
to the gateway's variant records by request id (a gateway trace's id is
``Langfuse.create_trace_id(seed=request_id)``). Langfuse itself cannot run on this machine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from langfuse import Langfuse
from typer.testing import CliRunner

from llmops.cli import app
from tests.observability.otlp_receiver import Receiver

N = 60  # requests per variant


def _score(i: int, rid: str, name: str, value: float, kind: str = "trace") -> dict[str, Any]:
    tid = Langfuse.create_trace_id(seed=rid)
    subject = {"kind": kind, "id": tid} if kind == "trace" else {
        "kind": "observation", "id": f"obs{i}", "traceId": tid}  # fmt: skip
    return {
        "id": f"s{i}-{name}", "projectId": "p", "name": name, "dataType": "NUMERIC",
        "value": value, "source": "API", "timestamp": "2026-01-01T00:00:00Z",
        "environment": "default", "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z", "subject": subject,
    }  # fmt: skip


class ScoresStandIn(Receiver):
    """Receiver plus Langfuse's v3 score list, served in two pages."""

    pages: list[list[dict[str, Any]]]
    queries: list[dict[str, str]]

    async def _scores(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        page = 1 if request.query.get("cursor") == "page2" else 0
        cursor = "page2" if page == 0 else None
        return web.json_response({"data": self.pages[page],
                                  "meta": {"cursor": cursor, "limit": 100}})  # fmt: skip


def _records(now: float) -> list[dict[str, Any]]:
    out = []
    for variant in ("v1", "v2"):
        for i in range(N):
            out.append({
                "ts": now - 60 + i * 0.1, "kind": "request", "alias": "chat",
                "variant": variant, "forced": False, "request_id": f"{variant}-{i}",
                "route": "chat", "status": 200, "latency_s": 0.1, "ttft_s": None,
                "prompt_tokens": 5, "completion_tokens": 10, "key": "test",
            })  # fmt: skip
    return out


@pytest.fixture()
def standin() -> Iterator[ScoresStandIn]:
    r = ScoresStandIn()
    r.queries = []
    # v1's answers judged 0.9, v2's 0.5; a feedback-like score without the prefix and a score
    # on a trace the records do not hold are left out; one on an observation counts.
    scores = [_score(i, f"v1-{i}", "online.answer_relevancy", 0.9) for i in range(0, N, 2)]
    scores += [_score(i, f"v2-{i}", "online.answer_relevancy", 0.5) for i in range(0, N - 2, 2)]
    scores.append(_score(999, f"v2-{N - 2}", "online.answer_relevancy", 0.5, kind="observation"))
    scores += [_score(i, f"v2-{i}", "helpful", 1.0) for i in range(N)]
    scores.append(_score(1000, "other-request", "online.answer_relevancy", 0.0))
    r.pages = [scores[: len(scores) // 2], scores[len(scores) // 2 :]]
    r.routes.append(("GET", "/api/public/v3/scores", r._scores))
    r.start()
    yield r
    r.stop()


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in records))
    return path


def _env(url: str) -> dict[str, str]:
    return {"LANGFUSE_PUBLIC_KEY": "pk-ab", "LANGFUSE_SECRET_KEY": "sk-ab",
            "LANGFUSE_BASE_URL": url, "LANGFUSE_HOST": url}  # fmt: skip


def test_online_judge_scores_join_the_report_by_request_id(
    standin: ScoresStandIn, tmp_path: Path
) -> None:
    events = _write(tmp_path / "events.jsonl", _records(time.time()))
    args = ["ab", "report", "--model", "chat", "--baseline", "v1", "--events", str(events)]
    r = CliRunner().invoke(app, [*args, "--json"], env=_env(standin.url))
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    by = {v["variant"]: v for v in rep["variants"]}
    assert by["v1"]["online"] == {"answer_relevancy": pytest.approx(0.9)}
    assert by["v2"]["online"] == {"answer_relevancy": pytest.approx(0.5)}
    assert by["v1"]["online_scored"] == by["v2"]["online_scored"] == N // 2
    assert standin.queries[0]["dataType"] == "NUMERIC" and "fromTimestamp" in standin.queries[0]
    assert len(standin.queries) == 2  # both pages read
    (cand,) = rep["candidates"]
    row = next(x for x in cand["rows"] if x["metric"] == "online: answer_relevancy")
    assert row["delta"] == pytest.approx(-0.4) and row["reading"] == "worse"
    assert cand["recommendation"] == "roll back" and "online: answer_relevancy" in cand["why"]

    table = CliRunner().invoke(app, args, env={**_env(standin.url), "COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "answer_relevancy 0.9 (30)" in table.stdout and "roll back" in table.stdout


def test_the_report_stands_without_langfuse(tmp_path: Path) -> None:
    events = _write(tmp_path / "events.jsonl", _records(time.time()))
    args = ["ab", "report", "--model", "chat", "--baseline", "v1", "--events", str(events),
            "--json"]  # fmt: skip
    # Configured but unreachable: said on stderr, the report is made from the records alone.
    r = CliRunner().invoke(app, args, env=_env("http://127.0.0.1:9"))
    assert r.exit_code == 0, r.output
    assert "online scores not read from Langfuse" in r.stderr
    rep = json.loads(r.stdout)
    assert all(v["online"] == {} for v in rep["variants"])
    assert rep["candidates"][0]["recommendation"] == "promote"
    # Not configured: Langfuse is not asked at all.
    r = CliRunner().invoke(app, args, env={"LANGFUSE_PUBLIC_KEY": "", "LANGFUSE_SECRET_KEY": ""})
    assert r.exit_code == 0 and r.stderr == "", r.output
