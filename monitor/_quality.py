"""Online quality: judge a sample of recent traced responses, write the scores to Langfuse.

Source: root observations of gateway traces, read with the Langfuse SDK's API client: for a RAG
request a span whose input is the user's query, for a plain request the generation itself,
whose input is the messages sent (the question is the last user message). Embedding traces are
skipped. Scorer: the same ragas judge metrics the eval harness
uses (answer relevancy; faithfulness when the trace carries context texts), with the judge model
reached through the gateway like any client. A judge failure leaves the score missing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from common import openai_base_url, ragas_embeddings, ragas_llm
from observability import load_embedder


@dataclass(frozen=True, slots=True)
class TracedResponse:
    trace_id: str
    question: str
    answer: str
    contexts: list[str] = field(default_factory=list)
    observation_id: str | None = None


class TraceSource(Protocol):
    def recent(self, since: datetime, limit: int) -> list[TracedResponse]: ...


class Scorer(Protocol):
    @property
    def metrics(self) -> Sequence[str]: ...

    async def score(self, item: TracedResponse) -> dict[str, float]: ...


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        for k in ("content", "text", "query", "question"):
            if isinstance(v.get(k), str):
                return str(v[k])
    if isinstance(v, list):  # chat messages: the last user turn; content parts: their text
        users = [m for m in v if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _text(users[-1].get("content"))
        texts = [p["text"] for p in v if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(texts) or None
    return None


class LangfuseTraces:
    """Recent gateway traces from Langfuse (``/api/public/v2/observations``, roots only)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def recent(self, since: datetime, limit: int) -> list[TracedResponse]:
        out: list[TracedResponse] = []
        cursor = None
        while len(out) < limit:
            page = self.client.api.observations.get_many(
                is_root_observation=True,
                from_start_time=since,
                limit=min(100, limit),
                fields="core,basic,io,metadata",
                cursor=cursor,
            )
            for o in page.data:
                if getattr(o, "level", None) == "ERROR" or getattr(o, "type", None) == "EMBEDDING":
                    continue
                q, a = _text(o.input), _text(o.output)
                if q and a:
                    ctx = (o.metadata or {}).get("contexts") if o.metadata else None
                    contexts = [str(c) for c in ctx] if isinstance(ctx, list) else []
                    out.append(TracedResponse(o.trace_id, q, a, contexts, o.id))
            cursor = getattr(page.meta, "cursor", None)
            if not cursor or not page.data:
                break
        return out[:limit]


class RagasScorer:
    """ragas judge metrics through an OpenAI-compatible endpoint (the gateway)."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str,
        metrics: Sequence[str],
        embedding_model: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        unknown = set(metrics) - {"answer_relevancy", "faithfulness"}
        if unknown:
            raise ValueError(f"unsupported online metrics: {sorted(unknown)}")
        self.metrics = list(metrics)
        self.model = model
        self.base_url = openai_base_url(base_url)
        self.api_key = api_key
        self.embedding_model = embedding_model
        self.timeout_s = timeout_s
        self._m: dict[str, Any] = {}

    def _metric(self, name: str) -> Any:
        if name not in self._m:
            from ragas.metrics.collections import AnswerRelevancy, Faithfulness

            llm = ragas_llm(self.model, self.base_url, self.api_key, self.timeout_s)
            if name == "faithfulness":
                self._m[name] = Faithfulness(llm=llm)
            else:
                self._m[name] = AnswerRelevancy(llm=llm, embeddings=self._embeddings())
        return self._m[name]

    def _embeddings(self) -> Any:
        return ragas_embeddings(load_embedder(self.embedding_model))

    async def score(self, item: TracedResponse) -> dict[str, float]:
        import math

        out: dict[str, float] = {}
        for name in self.metrics:
            if name == "faithfulness" and not item.contexts:
                continue
            try:
                m = self._metric(name)
                if name == "faithfulness":
                    res = await m.ascore(
                        user_input=item.question,
                        response=item.answer,
                        retrieved_contexts=item.contexts,
                    )
                else:
                    res = await m.ascore(user_input=item.question, response=item.answer)
                v = float(getattr(res, "value", res))
            except Exception:  # judge failure: the score stays missing, never guessed
                continue
            if math.isfinite(v):
                out[name] = v
        return out


@dataclass
class QualitySummary:
    read: int = 0
    sampled: int = 0
    scored: int = 0
    judge_failures: int = 0
    means: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_quality(
    source: TraceSource,
    scorer: Scorer,
    langfuse: Any | None,
    *,
    since_hours: float = 1.0,
    sample_rate: float = 0.1,
    limit: int = 200,
    seed: int | None = None,
    score_prefix: str = "online.",
    now: datetime | None = None,
) -> QualitySummary:
    """Sample, judge and (when ``langfuse`` is given) write ``online.<metric>`` scores."""
    now = now or datetime.now(UTC)
    items = source.recent(now - timedelta(hours=since_hours), limit)
    rng = random.Random(seed)
    picked = [it for it in items if rng.random() < sample_rate]
    summary = QualitySummary(read=len(items), sampled=len(picked))
    totals: dict[str, list[float]] = {}
    for it in picked:
        scores = await scorer.score(it)
        missing = [m for m in scorer.metrics if m not in scores]
        if missing and not (missing == ["faithfulness"] and not it.contexts):
            summary.judge_failures += 1
        if scores:
            summary.scored += 1
        for name, value in scores.items():
            totals.setdefault(name, []).append(value)
            if langfuse is not None:
                langfuse.create_score(
                    name=f"{score_prefix}{name}",
                    value=value,
                    trace_id=it.trace_id,
                    data_type="NUMERIC",
                    comment="online quality job",
                    metadata={"judge": getattr(scorer, "model", None)},
                )
    summary.means = {k: sum(v) / len(v) for k, v in totals.items()}
    return summary
