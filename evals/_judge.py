"""ragas metrics judged by an LLM reached through our own gateway.

``llm_factory(model, client=AsyncOpenAI(base_url=GATEWAY/v1))`` points ragas at the gateway, so the
judge is routed, metered and traced like any other client. A judge that errors, times out or
returns output ragas cannot parse is a *judge failure*: the score is missing (never guessed as 0 or
1), the failure is counted, and the gate fails when the rate exceeds ``judge.max_failure_rate``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from common import ragas_embeddings, ragas_llm
from evals._dataset import Case
from evals._results import Generation
from evals._semantic import Embedder
from evals._suite import MetricSpec, Suite


class JudgeFailure(Exception):
    """The judge gave no usable score."""


class Judge:
    """Builds the ragas metric objects once per run, on first use."""

    def __init__(self, suite: Suite, embedder: Embedder) -> None:
        self.suite = suite
        self.embedder = embedder
        self._metrics: dict[str, Any] = {}
        self._llm: Any = None

    @property
    def model(self) -> str:
        m = self.suite.judge_model()
        if not m:
            raise JudgeFailure("no judge model: set judge.model or target.model")
        return m

    def _get_llm(self) -> Any:
        if self._llm is None:
            j, t = self.suite.judge, self.suite.target
            base = j.base_url or t.resolved_base_url()
            key = os.environ.get(j.api_key_env or t.api_key_env) or "sk-no-key"
            self._llm = ragas_llm(self.model, base, key, j.timeout_s)
        return self._llm

    def _metric(self, kind: str) -> Any:
        if kind not in self._metrics:
            from ragas.metrics.collections import (
                AnswerRelevancy,
                ContextPrecision,
                ContextRecall,
                Faithfulness,
            )

            llm = self._get_llm()
            if kind == "faithfulness":
                self._metrics[kind] = Faithfulness(llm=llm)
            elif kind == "answer_relevancy":
                self._metrics[kind] = AnswerRelevancy(
                    llm=llm, embeddings=ragas_embeddings(self.embedder.encode)
                )
            elif kind == "context_precision":
                self._metrics[kind] = ContextPrecision(llm=llm)
            elif kind == "context_recall":
                self._metrics[kind] = ContextRecall(llm=llm)
            else:
                raise ValueError(f"{kind!r} is not a judged metric")
        return self._metrics[kind]

    async def score(self, spec: MetricSpec, case: Case, gen: Generation) -> float:
        """The ragas score, or :class:`JudgeFailure` with the reason."""
        question = case.question(self.suite.question_var)
        contexts = gen.contexts or case.contexts
        reference = case.references[0] if case.references else ""
        try:
            m = self._metric(spec.type)
            if spec.type == "faithfulness":
                res = await m.ascore(
                    user_input=question, response=gen.text, retrieved_contexts=contexts
                )
            elif spec.type == "answer_relevancy":
                res = await m.ascore(user_input=question, response=gen.text)
            elif spec.type == "context_precision":
                res = await m.ascore(
                    user_input=question, reference=reference, retrieved_contexts=contexts
                )
            else:
                res = await m.ascore(
                    user_input=question, retrieved_contexts=contexts, reference=reference
                )
        except JudgeFailure:
            raise
        except Exception as e:  # instructor retries exhausted, HTTP errors, parse errors...
            msg = " ".join(str(e).split())[:300]
            raise JudgeFailure(f"{type(e).__name__}: {msg}") from e
        value = getattr(res, "value", res)
        try:
            score = float(value)
        except (TypeError, ValueError):
            raise JudgeFailure(f"judge returned a non-numeric score {value!r}") from None
        if math.isnan(score) or math.isinf(score):
            raise JudgeFailure("judge returned no usable score (NaN)")
        return score

    def key_parts(self, spec: MetricSpec, case: Case, gen: Generation) -> dict[str, Any]:
        return {
            "metric": spec.type,
            "judge": self.suite.judge_model(),
            "question": case.question(self.suite.question_var),
            "response": gen.text,
            "contexts": gen.contexts or case.contexts,
            "reference": case.references[:1],
        }
