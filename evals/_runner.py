"""Run a suite once: every (case, repeat) through the gateway, bounded concurrency, cached.

Order of work per (case, repeat): cache lookup -> request -> score. The gateway is checked (model
known, reachable) only when some request actually misses the cache, so a fully cached re-run
sends nothing at all. Errors never raise out of a case: they are recorded and counted, and the
gate decides (fail closed) from the counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from evals._cache import DiskCache, cache_key
from evals._dataset import Case
from evals._errors import TargetError
from evals._generate import Request, build_request, generate
from evals._judge import Judge, JudgeFailure
from evals._metrics import load_schema, score_plain
from evals._prompt_refs import ResolvedPrompt
from evals._results import (
    CaseResult,
    Generation,
    RepeatResult,
    RunResult,
    TargetInfo,
    metric_means,
    template_source,
)
from evals._semantic import Embedder
from evals._suite import MetricSpec, Suite

EMBED_MODEL_ID = "all-MiniLM-L6-v2"


@dataclass
class RunContext:
    """Shared by the runs of one command: cache, embedding model, progress callback."""

    cache: DiskCache
    embedder: Embedder = field(default_factory=Embedder)
    on_step: Callable[[], None] | None = None


@dataclass
class _Counters:
    generations: int = 0
    errors: int = 0
    judge_calls: int = 0
    judge_failures: int = 0


def _client(base_url: str, api_key: str, timeout: float) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=1)


async def _preflight(client: Any, base_url: str, model: str) -> None:
    import openai

    try:
        await client.models.retrieve(model)
    except openai.NotFoundError:
        raise TargetError(f"the gateway at {base_url} does not know model {model!r}") from None
    except openai.APIStatusError as e:
        raise TargetError(f"gateway {base_url}: HTTP {e.status_code} for model {model!r}") from None
    except openai.APIError as e:
        raise TargetError(f"gateway {base_url} is unreachable: {type(e).__name__}: {e}") from None


@dataclass(frozen=True, slots=True)
class _Step:
    """One (case, repeat) of a run: its request and the cache key of its generation."""

    case: Case
    repeat: int
    request: Request
    key: str


async def run_suite(
    suite: Suite,
    cases: list[Case],
    ctx: RunContext,
    *,
    label: str = "run",
    prompt: ResolvedPrompt | None = None,
    model: str | None = None,
) -> RunResult:
    """Evaluate ``cases`` with ``prompt``/``model``; the result holds every output and score."""
    t0 = time.perf_counter()
    base_url = suite.target.resolved_base_url()
    plan = _plan(suite, cases, prompt, model or suite.target.model)
    served_model = plan[0].request.model
    cached = {s.key: ctx.cache.get(s.key) for s in plan}
    reps, counters = await _execute(suite, ctx, plan, cached, base_url, served_model)
    results = _case_results(suite, cases, plan, reps)
    return RunResult(
        suite=suite.name,
        target=_target_info(suite, label, prompt, served_model, base_url),
        cases=results,
        generations=counters.generations,
        generation_errors=counters.errors,
        judge_calls=counters.judge_calls,
        judge_failures=counters.judge_failures,
        cache_hits=sum(1 for v in cached.values() if v is not None),
        cache_misses=sum(1 for v in cached.values() if v is None),
        wall_s=time.perf_counter() - t0,
        means=metric_means(results, (m.id for m in suite.metrics)),
    )


def _plan(
    suite: Suite, cases: list[Case], prompt: ResolvedPrompt | None, model: str | None
) -> list[_Step]:
    """Every request of the run, built before anything is sent: a template that cannot render
    a case is a suite error (TargetError), not one failed case among many."""
    plan: list[_Step] = []
    for case in cases:
        for r in range(suite.repeats):
            try:
                req = build_request(suite, case, r, prompt, model)
            except Exception as e:
                raise TargetError(f"case {case.id!r}: cannot build the request: {e}") from None
            plan.append(_Step(case, r, req, cache_key("generation", req.key_parts)))
    return plan


async def _execute(
    suite: Suite,
    ctx: RunContext,
    plan: list[_Step],
    cached: dict[str, Any],
    base_url: str,
    served_model: str,
) -> tuple[list[RepeatResult], _Counters]:
    """Run every step concurrently, in plan order; the gateway is checked first only when some
    generation is not cached, so a fully cached re-run sends nothing."""
    t = suite.target
    client = _client(base_url, t.api_key(), t.timeout_s)
    try:
        if any(v is None for v in cached.values()):
            await _preflight(client, base_url, served_model)
        worker = _Worker(
            suite=suite,
            ctx=ctx,
            client=client,
            cached=cached,
            judge=Judge(suite, ctx.embedder),
            schemas={m.id: load_schema(m, suite.base_dir) for m in suite.metrics},
            gen_sem=asyncio.Semaphore(suite.concurrency),
            judge_sem=asyncio.Semaphore(suite.judge.concurrency or suite.concurrency),
        )
        reps = await asyncio.gather(*(worker.run(s) for s in plan))
    finally:
        await client.close()
    return list(reps), worker.counters


@dataclass
class _Worker:
    """What every step of one run shares: the client, cache hits, concurrency limits, the
    judge, parsed JSON schemas and the counters."""

    suite: Suite
    ctx: RunContext
    client: Any
    cached: dict[str, Any]
    judge: Judge
    schemas: dict[str, Any]
    gen_sem: asyncio.Semaphore
    judge_sem: asyncio.Semaphore
    counters: _Counters = field(default_factory=_Counters)

    async def run(self, step: _Step) -> RepeatResult:
        """Generate (or take from the cache), then score every metric; never raises for the
        case's own failures, which are recorded on the result."""
        gen = await self._generation(step)
        self.counters.generations += 1
        if gen.error is not None:
            self.counters.errors += 1
        rep = RepeatResult(repeat=step.repeat, generation=gen)
        for m in self.suite.metrics:
            await self._score(m, step.case, gen, rep)
        if self.ctx.on_step is not None:
            self.ctx.on_step()
        return rep

    async def _generation(self, step: _Step) -> Generation:
        """The cached generation, else a fresh one; only successful ones are cached, so a
        transient error is retried on the next run."""
        hit = self.cached.get(step.key)
        if hit is not None:
            gen = Generation.model_validate(hit)
            gen.cached = True
            return gen
        async with self.gen_sem:
            gen = await generate(self.client, step.request, self.suite)
        if gen.error is None:
            self.ctx.cache.put(step.key, gen.model_dump(exclude={"cached"}))
        return gen

    async def _score(self, m: MetricSpec, case: Case, gen: Generation, rep: RepeatResult) -> None:
        """Score one metric into ``rep``; a failed generation scores None (not 0), so it counts
        as an error in the gate rather than as a bad answer."""
        if gen.error is not None:
            rep.scores[m.id] = None
            return
        if m.type == "semantic_similarity":
            rep.scores[m.id] = await self._semantic(case, gen)
            return
        if m.judged:
            await self._judged(m, case, gen, rep)
            return
        rep.scores[m.id] = score_plain(m, case, gen, self.schemas.get(m.id))

    async def _semantic(self, case: Case, gen: Generation) -> float:
        """Embedding similarity to the references, cached by model, answer and references."""
        ctx = self.ctx
        key = cache_key(
            "semantic", {"model": EMBED_MODEL_ID, "text": gen.text, "refs": case.references}
        )
        hit = ctx.cache.get(key)
        if hit is not None:
            return float(hit["score"])
        score = await ctx.embedder.similarity(gen.text, case.references)
        ctx.cache.put(key, {"score": score})
        return score

    async def _judged(self, m: MetricSpec, case: Case, gen: Generation, rep: RepeatResult) -> None:
        """An LLM judge's score, cached; a judge failure leaves the score None and is counted
        (the gate fails closed above ``judge.max_failure_rate``), it never raises."""
        ctx = self.ctx
        self.counters.judge_calls += 1
        key = cache_key("judge", self.judge.key_parts(m, case, gen))
        hit = ctx.cache.get(key)
        if hit is not None:
            rep.scores[m.id] = float(hit["score"])
            return
        try:
            async with self.judge_sem:
                score = await self.judge.score(m, case, gen)
        except JudgeFailure as e:
            self.counters.judge_failures += 1
            rep.scores[m.id] = None
            rep.judge_errors[m.id] = str(e)
            return
        ctx.cache.put(key, {"score": score})
        rep.scores[m.id] = score


def _case_results(
    suite: Suite, cases: list[Case], plan: list[_Step], reps: list[RepeatResult]
) -> list[CaseResult]:
    """Repeats grouped back by case (in dataset order), each metric averaged over the repeats
    that scored it (a failed generation has no score and does not count as 0)."""
    by_case: dict[str, list[RepeatResult]] = {}
    for step, rep in zip(plan, reps, strict=True):
        by_case.setdefault(step.case.id, []).append(rep)
    results: list[CaseResult] = []
    for case in cases:
        rs = by_case[case.id]
        scores: dict[str, float | None] = {}
        for m in suite.metrics:
            # NaN (a metric that could not score) is no score, never a number to average.
            vals = [x for x in (rp.scores.get(m.id) for rp in rs) if x is not None and x == x]
            scores[m.id] = fmean(vals) if vals else None
        inp: dict[str, Any] = {"vars": case.vars} if case.vars else {}
        if case.messages:
            inp["messages"] = case.messages
        results.append(
            CaseResult(
                case_id=case.id, repeats=rs, scores=scores, input=inp, references=case.references
            )
        )
    return results


def _target_info(
    suite: Suite, label: str, prompt: ResolvedPrompt | None, served_model: str, base_url: str
) -> TargetInfo:
    """What was evaluated, as the reports name it: prompt version and ref, model, gateway."""
    return TargetInfo(
        label=label,
        prompt=prompt.name if prompt else None,
        version=prompt.version if prompt else None,
        commit=prompt.commit if prompt else None,
        ref=prompt.ref if prompt else None,
        model=served_model,
        base_url=base_url,
        render=suite.target.render,
        prompt_text=template_source(prompt.template) if prompt else None,
    )
