"""The online quality job: traces read through the Langfuse SDK's API client from a loopback
stand-in of Langfuse's ``/api/public/v2/observations``, sampled, judged, and the scores written
back through the SDK (they arrive at the stand-in's ``/api/public/scores``).

The judge is a deterministic stand-in here: a real ragas judge needs a capable model, which this
machine does not have (the RagasScorer is constructed and its guard rails checked)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from langfuse import Langfuse

from monitor._quality import LangfuseTraces, RagasScorer, TracedResponse, run_quality
from tests.observability.otlp_receiver import Receiver


def _obs(i: int, level: str = "DEFAULT") -> dict[str, Any]:
    if i % 2:  # a plain request's trace: the generation is the root, its input the messages
        return {
            **_obs(0, level),
            "id": f"obs{i}",
            "traceId": f"{i:032x}",
            "type": "GENERATION",
            "input": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": f"question {i}"}]},
            ],
            "output": f"answer {i}",
        }
    return {
        "id": f"obs{i}",
        "traceId": f"{i:032x}",
        "startTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-01T00:00:01Z",
        "projectId": "p",
        "parentObservationId": None,
        "type": "SPAN",
        "isRootObservation": True,
        "level": level,
        "input": f"question {i}",
        "output": f"answer {i}",
        "metadata": {},
    }


class LangfuseStandIn(Receiver):
    """Receiver plus a two-page observations endpoint."""

    queries: list[dict[str, str]]

    async def _observations(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        if request.query.get("cursor") == "page2":
            embedding = {**_obs(50), "type": "EMBEDDING", "output": "[1 embeddings]"}
            data = [_obs(i) for i in range(5, 8)] + [_obs(99, "ERROR"), embedding]
            return web.json_response({"data": data, "meta": {"cursor": None}})
        return web.json_response({"data": [_obs(i) for i in range(5)], "meta": {"cursor": "page2"}})


@pytest.fixture()
def standin() -> Iterator[LangfuseStandIn]:
    r = LangfuseStandIn()
    r.queries = []
    r.routes.append(("GET", "/api/public/v2/observations", r._observations))
    r.start()
    yield r
    r.stop()


class LengthJudge:
    """Deterministic stand-in judge: 1.0 when the answer echoes the question's number."""

    metrics = ["answer_relevancy"]
    model = "stand-in"

    async def score(self, item: TracedResponse) -> dict[str, float]:
        return {"answer_relevancy": float(item.question.split()[-1] == item.answer.split()[-1])}


def test_quality_job_reads_samples_scores_and_writes_back(standin: LangfuseStandIn) -> None:
    lf = Langfuse(
        public_key=f"pk-q-{uuid.uuid4().hex[:6]}",
        secret_key="sk",
        base_url=standin.url,
        flush_interval=0.1,
    )
    try:
        source = LangfuseTraces(lf)
        items = source.recent(datetime(2026, 1, 1, tzinfo=UTC), limit=50)
        assert [it.trace_id for it in items] == [
            f"{i:032x}" for i in range(8)
        ]  # ERROR, EMBEDDING skipped
        assert standin.queries[0]["isRootObservation"] == "true"
        assert "fromStartTime" in standin.queries[0]
        summary = asyncio.run(
            run_quality(
                source,
                LengthJudge(),
                lf,
                sample_rate=1.0,
                seed=1,
                now=datetime(2026, 1, 1, 1, tzinfo=UTC),
            )
        )
        assert summary.read == 8 and summary.sampled == 8 and summary.scored == 8
        assert summary.means == {"answer_relevancy": 1.0}
        lf.flush()
        deadline = time.monotonic() + 10
        while len(standin.scores) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(s["traceId"] for s in standin.scores) == [f"{i:032x}" for i in range(8)]
        assert {s["name"] for s in standin.scores} == {"online.answer_relevancy"}
        half = asyncio.run(run_quality(source, LengthJudge(), None, sample_rate=0.5, seed=2))
        print(f"\nsample_rate 0.5 picked {half.sampled} of {half.read} traces")
        assert 0 < half.sampled < half.read
    finally:
        lf.shutdown()


def test_ragas_scorer_guards() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        RagasScorer(model="m", base_url="http://x", api_key="k", metrics=["bleu"])
    s = RagasScorer(model="m", base_url="http://127.0.0.1:9", api_key="k", metrics=["faithfulness"])
    assert s.base_url == "http://127.0.0.1:9/v1"
    # no contexts: faithfulness is skipped, not guessed
    assert asyncio.run(s.score(TracedResponse("t", "q", "a"))) == {}
