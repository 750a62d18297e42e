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
from evals._results import CaseResult, Generation, RepeatResult, RunResult, TargetInfo
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
    t = suite.target
    model = model or t.model
    base_url = t.resolved_base_url()
    plan: list[tuple[Case, int, Request, str]] = []
    for case in cases:
        for r in range(suite.repeats):
            try:
                req = build_request(suite, case, r, prompt, model)
            except Exception as e:  # a template that cannot render a case is a suite error
                raise TargetError(f"case {case.id!r}: cannot build the request: {e}") from None
            plan.append((case, r, req, cache_key("generation", req.key_parts)))
    served_model = plan[0][2].model
    cached = {k: ctx.cache.get(k) for *_, k in plan}
    client = _client(base_url, t.api_key(), t.timeout_s)
    try:
        if any(v is None for v in cached.values()):
            await _preflight(client, base_url, served_model)
        judge = Judge(suite, ctx.embedder)
        schemas = {m.id: load_schema(m, suite.base_dir) for m in suite.metrics}
        gen_sem = asyncio.Semaphore(suite.concurrency)
        judge_sem = asyncio.Semaphore(suite.judge.concurrency or suite.concurrency)
        counters = _Counters()

        async def one(case: Case, r: int, req: Request, key: str) -> RepeatResult:
            hit = cached.get(key)
            if hit is not None:
                gen = Generation.model_validate(hit)
                gen.cached = True
            else:
                async with gen_sem:
                    gen = await generate(client, req, suite)
                if gen.error is None:
                    ctx.cache.put(key, gen.model_dump(exclude={"cached"}))
            counters.generations += 1
            if gen.error is not None:
                counters.errors += 1
            rep = RepeatResult(repeat=r, generation=gen)
            for m in suite.metrics:
                await _score(m, case, gen, rep, judge, judge_sem, ctx, schemas, counters)
            if ctx.on_step is not None:
                ctx.on_step()
            return rep

        reps = await asyncio.gather(*(one(*p) for p in plan))
    finally:
        await client.close()

    by_case: dict[str, list[RepeatResult]] = {}
    for (case, *_), rep in zip(plan, reps, strict=True):
        by_case.setdefault(case.id, []).append(rep)
    results: list[CaseResult] = []
    for case in cases:
        rs = by_case[case.id]
        scores: dict[str, float | None] = {}
        for m in suite.metrics:
            vals = [x for x in (rp.scores.get(m.id) for rp in rs) if x is not None]
            scores[m.id] = fmean(vals) if vals else None
        inp: dict[str, Any] = {"vars": case.vars} if case.vars else {}
        if case.messages:
            inp["messages"] = case.messages
        results.append(
            CaseResult(
                case_id=case.id, repeats=rs, scores=scores, input=inp, references=case.references
            )
        )
    means: dict[str, float | None] = {}
    for m in suite.metrics:
        vals = [x for x in (c.scores.get(m.id) for c in results) if x is not None]
        means[m.id] = fmean(vals) if vals else None
    info = TargetInfo(
        label=label,
        prompt=prompt.name if prompt else None,
        version=prompt.version if prompt else None,
        commit=prompt.commit if prompt else None,
        ref=prompt.ref if prompt else None,
        model=served_model,
        base_url=base_url,
        render=t.render,
    )
    return RunResult(
        suite=suite.name,
        target=info,
        cases=results,
        generations=counters.generations,
        generation_errors=counters.errors,
        judge_calls=counters.judge_calls,
        judge_failures=counters.judge_failures,
        cache_hits=sum(1 for v in cached.values() if v is not None),
        cache_misses=sum(1 for v in cached.values() if v is None),
        wall_s=time.perf_counter() - t0,
        means=means,
    )


async def _score(
    m: MetricSpec,
    case: Case,
    gen: Generation,
    rep: RepeatResult,
    judge: Judge,
    judge_sem: asyncio.Semaphore,
    ctx: RunContext,
    schemas: dict[str, Any],
    counters: _Counters,
) -> None:
    if gen.error is not None:
        rep.scores[m.id] = None
        return
    if m.type == "semantic_similarity":
        key = cache_key(
            "semantic", {"model": EMBED_MODEL_ID, "text": gen.text, "refs": case.references}
        )
        hit = ctx.cache.get(key)
        if hit is not None:
            rep.scores[m.id] = float(hit["score"])
            return
        score = await ctx.embedder.similarity(gen.text, case.references)
        ctx.cache.put(key, {"score": score})
        rep.scores[m.id] = score
        return
    if m.judged:
        counters.judge_calls += 1
        key = cache_key("judge", judge.key_parts(m, case, gen))
        hit = ctx.cache.get(key)
        if hit is not None:
            rep.scores[m.id] = float(hit["score"])
            return
        try:
            async with judge_sem:
                score = await judge.score(m, case, gen)
        except JudgeFailure as e:
            counters.judge_failures += 1
            rep.scores[m.id] = None
            rep.judge_errors[m.id] = str(e)
            return
        ctx.cache.put(key, {"score": score})
        rep.scores[m.id] = score
        return
    rep.scores[m.id] = score_plain(m, case, gen, schemas.get(m.id))
