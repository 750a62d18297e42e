"""Prefix-aware replica choice: send a request where its prompt's prefix is likely still in
vLLM's KV cache, without piling a hot prefix onto one replica.

The prompt (chat messages in order, a completion prompt, or a Responses input) is cut into
fixed-size character blocks, each hashed together with the hash before it, so block i's hash
stands for the whole prompt up to the end of block i. Each replica has a bounded LRU of the
block hashes recently routed to it: a stand-in for its cache, sized from the KV capacity vLLM
reports. The hashes are Python's own (``hash`` of a tuple): fast, and only ever compared inside
this process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway._replicas import Replica
from gateway._routing import LeastOutstanding
from gateway._routing_config import RoutingConfig

DEFAULT_BLOCKS = 16384
CHARS_PER_TOKEN = 4  # for sizing the LRU from a capacity in tokens
STATS_TTL_FACTOR = 3  # scraped stats older than 3 scrape intervals are ignored
KV_FULL = 0.98  # a replica this full evicts what it holds: its prefix is not worth chasing
_SEP = "\x1e"


def prompt_text(route: str, data: dict[str, Any]) -> str:
    """The prompt as one string, in the order the engine sees it (roles included)."""
    if route == "chat":
        parts = []
        for m in data.get("messages") or ():
            if isinstance(m, dict):
                c = m.get("content")
                parts.append(f"{m.get('role')}\x1f{c if isinstance(c, str) else repr(c)}")
        return _SEP.join(parts)
    if route == "completions":
        p = data.get("prompt")
        return p if isinstance(p, str) else repr(p) if p is not None else ""
    if route == "responses":
        inp = data.get("input")
        text = inp if isinstance(inp, str) else repr(inp) if inp is not None else ""
        instructions = data.get("instructions")
        return f"{instructions}{_SEP}{text}" if isinstance(instructions, str) else text
    return ""


def prompt_blocks(text: str, block_chars: int) -> list[int]:
    """Chained block hashes: ``h[i] = hash((h[i-1], block i))``. A partial last block counts
    (vLLM caches only full blocks, but a request that repeats the prompt matches it)."""
    out: list[int] = []
    append = out.append
    h = 0
    for start in range(0, len(text), block_chars):
        h = hash((h, text[start : start + block_chars]))
        append(h)
    return out


class PrefixIndex:
    """The block hashes recently routed to one replica, oldest first, at most ``capacity``."""

    __slots__ = ("blocks", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.blocks: OrderedDict[int, None] = OrderedDict()

    def matched(self, blocks: Sequence[int]) -> int:
        """How many leading blocks this replica holds. Chained hashes make holding block i
        imply (almost always) holding every block before it, so a binary search finds it."""
        held = self.blocks
        if not blocks or blocks[0] not in held:
            return 0  # most replicas, for most prompts: one lookup
        lo, hi = 1, len(blocks)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if blocks[mid - 1] in held:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def add(self, blocks: Sequence[int]) -> None:
        held = self.blocks
        for b in blocks:
            if b in held:
                held.move_to_end(b)
            else:
                held[b] = None
        while len(held) > self.capacity:
            held.popitem(last=False)


class PrefixAware:
    """Most prompt blocks matched, weighed against load; least-outstanding when none match.

    Load is the requests in flight from this gateway plus the engine's own waiting queue
    (scraped, while fresh). Only replicas within ``max_load_gap`` requests of the least loaded
    one may be chosen for their prefix, so a hot prefix spreads once its replica is busy. Among
    them the score is ``matched share - load_weight x (load - least load) / (gap + 1)``.
    """

    def __init__(self, cfg: RoutingConfig) -> None:
        self.cfg = cfg
        self.fallback = LeastOutstanding()
        self.indexes: dict[Replica, PrefixIndex] = {}
        self.matched_blocks = 0  # totals, for the hit-rate metric
        self.routed_blocks = 0

    def capacity(self, r: Replica) -> int:
        if self.cfg.max_blocks_per_replica is not None:
            return self.cfg.max_blocks_per_replica
        if r.kv_tokens:
            per_block = max(1, self.cfg.block_chars // CHARS_PER_TOKEN)
            return max(1, min(1 << 20, r.kv_tokens // per_block))
        return DEFAULT_BLOCKS

    def index(self, r: Replica) -> PrefixIndex:
        idx = self.indexes.get(r)
        if idx is None:
            idx = self.indexes[r] = PrefixIndex(self.capacity(r))
        elif r.kv_tokens and self.cfg.max_blocks_per_replica is None:
            idx.capacity = self.capacity(r)  # vLLM's capacity arrives with the first scrape
        return idx

    def forget(self, keep: Collection[Replica]) -> None:
        """Drop the indexes of replicas no longer configured."""
        for r in [r for r in self.indexes if r not in keep]:
            del self.indexes[r]

    def choose(
        self,
        replicas: Sequence[Replica],
        affinity_key: str | None = None,
        exclude: Collection[Replica] = (),
        ctx: Any = None,
    ) -> Replica | None:
        blocks: list[int] | None = None
        if ctx is not None:
            blocks = ctx.extensions.get("prefix_blocks")
            if blocks is None:
                text = prompt_text(ctx.route, ctx.data) if ctx.data else ""
                blocks = ctx.extensions["prefix_blocks"] = prompt_blocks(text, self.cfg.block_chars)
        return self.choose_blocks(replicas, blocks or [], exclude)

    def choose_blocks(
        self, replicas: Sequence[Replica], blocks: Sequence[int], exclude: Collection[Replica] = ()
    ) -> Replica | None:
        now = time.monotonic()
        fresh = now - STATS_TTL_FACTOR * self.cfg.scrape_interval_s
        # One pass: the candidates, their load, and what each holds of the prompt.
        rows: list[tuple[Replica, int, int]] = []
        least = -1
        first = blocks[0] if blocks else None
        indexes = self.indexes
        for r in replicas:
            if not r.available(now) or r in exclude:
                continue
            load = r.in_flight + (r.waiting if r.stats_at >= fresh else 0)
            if least < 0 or load < least:
                least = load
            idx = indexes.get(r)
            held = 0
            if idx is not None and first in idx.blocks:
                if not (r.stats_at >= fresh and r.kv_usage >= KV_FULL):
                    held = idx.matched(blocks)
            rows.append((r, load, held))
        if not rows:
            return None
        best: Replica | None = None
        best_matched = 0
        if first is not None:
            gap = self.cfg.max_load_gap
            penalty = self.cfg.load_weight / (gap + 1)
            n = len(blocks)
            best_score = 0.0
            for r, load, held in rows:
                if held and load <= least + gap:
                    score = held / n - penalty * (load - least)
                    if score > best_score:
                        best, best_score, best_matched = r, score, held
        if best is None:
            best = self.fallback.choose([row[0] for row in rows])
            best_matched = 0
        assert best is not None
        if first is not None:
            self.index(best).add(blocks)
            self.matched_blocks += best_matched
            self.routed_blocks += len(blocks)
        return best


class PrefixRoutingCollector:
    """``llmops_prefix_*`` per model: blocks routed and matched (their ratio estimates the
    prefix-cache hit rate the routing aims for) and blocks held in the indexes (memory)."""

    def __init__(self, strategies: Callable[[], Iterable[tuple[str, Any]]]) -> None:
        self.strategies = strategies

    def collect(self) -> Iterator[Metric]:
        routed = CounterMetricFamily(
            "llmops_prefix_routed_blocks", "Prompt blocks of requests routed by prefix",
            labels=["model"],
        )  # fmt: skip
        matched = CounterMetricFamily(
            "llmops_prefix_matched_blocks",
            "Prompt blocks already routed to the replica chosen (its cache likely holds them)",
            labels=["model"],
        )
        held = GaugeMetricFamily(
            "llmops_prefix_index_blocks", "Block hashes remembered, all replicas",
            labels=["model"],
        )  # fmt: skip
        for model, s in self.strategies():
            if isinstance(s, PrefixAware):
                routed.add_metric([model], s.routed_blocks)
                matched.add_metric([model], s.matched_blocks)
                held.add_metric([model], sum(len(i.blocks) for i in s.indexes.values()))
        yield routed
        yield matched
        yield held
