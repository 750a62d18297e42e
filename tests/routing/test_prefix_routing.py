"""Prefix-aware routing: the chained block hashes, the choice (prefix matched weighed against
load, capped imbalance, fallback), the bounded per-replica index, the config's errors, the vLLM
metrics it reads, and the gateway routing by prefix in front of fake vLLM servers (real HTTP,
the official openai SDK; the fakes stand in for vLLM, which has no prefix cache to show on a
fake but reports its queue the same way)."""

from __future__ import annotations

import logging
import time

import openai
import pytest
from pydantic import ValidationError

from gateway import GatewayConfig
from gateway._engine_stats import parse
from gateway._prefix_routing import PrefixAware, PrefixIndex, prompt_blocks, prompt_text
from gateway._replicas import Replica
from gateway._routing import RandomChoice, RoundRobin
from gateway._routing_config import RoutingConfig
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.servers import GatewayServer
from tests.reliability.fakes import SlowUpstream

SYSTEM = "You are the support assistant of a bank. Answer from the policy below. " * 40


def _replicas(n: int) -> list[Replica]:
    return [Replica(model="m", url=f"http://r{i}") for i in range(n)]


def _chat(system: str, question: str) -> dict:
    return {"messages": [{"role": "system", "content": system},
                         {"role": "user", "content": question}]}  # fmt: skip


def _blocks(system: str, question: str, block_chars: int = 512) -> list[int]:
    return prompt_blocks(prompt_text("chat", _chat(system, question)), block_chars)


def test_blocks_are_chained_over_the_prompt_in_order() -> None:
    a, b = _blocks(SYSTEM, "rates?"), _blocks(SYSTEM, "fees?")
    shared = len(SYSTEM) // 512  # the blocks that hold only the system prompt
    assert a[:shared] == b[:shared] and a[-1] != b[-1]
    # One character changed early changes every block from there on.
    c = _blocks("X" + SYSTEM[1:], "rates?")
    assert all(x != y for x, y in zip(a, c, strict=True))
    # Roles count: the same text as a user message is another prompt.
    as_user = {"messages": [{"role": "user", "content": SYSTEM}]}
    swapped = prompt_blocks(prompt_text("chat", as_user), 512)
    assert swapped[0] != a[0]
    assert prompt_text("completions", {"prompt": "abc"}) == "abc"
    assert prompt_text("responses", {"input": "hi", "instructions": "be brief"}).endswith("hi")
    assert prompt_blocks("", 512) == []


def test_index_is_bounded_lru_and_matches_the_longest_prefix() -> None:
    idx = PrefixIndex(capacity=10)
    blocks = list(range(100, 130))
    idx.add(blocks)
    assert len(idx.blocks) == 10  # the oldest went first
    assert idx.matched(blocks) == 0  # the leading blocks were evicted
    idx.add(blocks[:8])
    assert idx.matched(blocks) == 8 and idx.matched(blocks[:5]) == 5
    assert idx.matched([1, 2, 3]) == 0


def test_groups_stick_to_one_replica_each_and_spread_over_the_cluster() -> None:
    s = PrefixAware(RoutingConfig(strategy="prefix"))
    reps = _replicas(4)
    systems = [f"Tenant {g}. " + SYSTEM for g in range(4)]
    served: dict[int, set[str]] = {g: set() for g in range(4)}
    for i in range(80):
        g = i % 4
        served[g].add(s.choose_blocks(reps, _blocks(systems[g], f"question {i}")).url)
    assert all(len(urls) == 1 for urls in served.values()), served
    assert len(set().union(*served.values())) >= 3  # not all on one replica
    # Every request after a group's first matches the blocks its system prompt fills.
    shared = len(systems[0]) // 512
    assert s.matched_blocks == (80 - 4) * shared


def test_a_hot_prefix_moves_when_its_replica_is_loaded() -> None:
    cfg = RoutingConfig(strategy="prefix", max_load_gap=2)
    s = PrefixAware(cfg)
    reps = _replicas(3)
    home = s.choose_blocks(reps, _blocks(SYSTEM, "q0"))
    assert s.choose_blocks(reps, _blocks(SYSTEM, "q1")) is home
    # Within the gap the prefix wins over an idle replica.
    home.in_flight = 2
    assert s.choose_blocks(reps, _blocks(SYSTEM, "q2")) is home
    # The engine's own queue counts while it is fresh; a stale one is ignored.
    home.waiting, home.stats_at = 5, time.monotonic() - 10
    assert s.choose_blocks(reps, _blocks(SYSTEM, "q3")) is home
    home.stats_at = time.monotonic()
    spill = s.choose_blocks(reps, _blocks(SYSTEM, "q4"))
    assert spill is not home
    # Now two replicas hold the prefix: the less loaded one takes it.
    assert s.choose_blocks(reps, _blocks(SYSTEM, "q5")) is spill
    # A replica whose KV cache is full is not chased for its prefix.
    home.in_flight, home.waiting = 0, 0
    spill.kv_usage, spill.stats_at = 0.99, time.monotonic()
    assert s.choose_blocks(reps, _blocks(SYSTEM, "q6")) is home


def test_nothing_matched_falls_back_to_least_outstanding() -> None:
    s = PrefixAware(RoutingConfig(strategy="prefix"))
    reps = _replicas(3)
    reps[0].in_flight, reps[1].in_flight = 5, 1
    assert s.choose_blocks(reps, _blocks("A" * 2000, "x")) is reps[2]
    assert s.choose_blocks(reps, []) is reps[2]
    reps[2].healthy = False
    assert s.choose_blocks(reps, _blocks("B" * 2000, "x")) is reps[1]
    assert s.choose_blocks([r for r in reps if not r.healthy], _blocks("C", "x")) is None


def test_index_size_comes_from_vllm_kv_capacity() -> None:
    s = PrefixAware(RoutingConfig(strategy="prefix", block_chars=512))
    r = _replicas(1)[0]
    assert s.index(r).capacity == 16384  # unknown capacity
    r.kv_tokens = 12800  # 12,800 tokens = 100 blocks of 512 chars at 4 chars per token
    assert s.index(r).capacity == 100
    fixed = PrefixAware(RoutingConfig(strategy="prefix", max_blocks_per_replica=7))
    assert fixed.index(r).capacity == 7


def test_round_robin_and_random_follow_weights() -> None:
    reps = _replicas(2)
    reps[0].weight = 3
    rr = RoundRobin()
    picks = [rr.choose(reps).url for _ in range(8)]
    assert picks.count("http://r0") == 6
    rnd = RandomChoice(seed=1)
    share = sum(rnd.choose(reps) is reps[0] for _ in range(4000)) / 4000
    assert 0.7 < share < 0.8


def test_routing_config_errors_are_clear() -> None:
    up = [{"url": "http://127.0.0.1:1"}]
    cfg = GatewayConfig(models=[{"name": "m", "upstreams": up, "routing": "prefix"}], prompts=None)
    assert cfg.models[0].routing.strategy == "prefix"
    with pytest.raises(ValidationError, match="least_outstanding"):
        GatewayConfig(models=[{"name": "m", "upstreams": up, "routing": "fastest"}])
    with pytest.raises(ValidationError, match="block_chars"):
        GatewayConfig(models=[{"name": "m", "upstreams": up,
                               "routing": {"strategy": "prefix", "block_chars": 0}}])  # fmt: skip
    with pytest.raises(ValidationError, match="max_load_gap"):
        GatewayConfig(models=[{"name": "m", "upstreams": up,
                               "routing": {"strategy": "prefix", "max_load_gap": -1}}])  # fmt: skip
    with pytest.raises(ValidationError, match="has no replicas of its own"):
        GatewayConfig(models=[
            {"name": "a", "upstreams": up}, {"name": "b", "upstreams": up},
            {"name": "chat", "routing": "prefix",
             "variants": [{"model": "a", "weight": 1}, {"model": "b", "weight": 1}]},
        ])  # fmt: skip


VLLM_METRICS = b"""# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="0",model_name="m"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.625
vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="4096"} 1.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 120.0
"""


def test_engine_stats_parse_vllm_metrics() -> None:
    r = _replicas(1)[0]
    assert parse(VLLM_METRICS, r)
    assert (r.waiting, r.running, r.kv_usage, r.kv_tokens) == (3, 7, 0.625, 65536)
    assert r.stats_at > 0
    assert not parse(b"# nothing from vLLM here\nprocess_cpu_seconds_total 1.0\n", r)
    assert (r.waiting, r.kv_tokens, r.stats_at) == (0, 0, 0.0)


def test_gateway_routes_by_prefix_and_survives_unreadable_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two report vLLM's queue on /metrics; the third has no /metrics at all (404).
    ups = [SlowUpstream(name="u0").start(), SlowUpstream(name="u1").start(),
           FakeUpstream(name="u2").start()]  # fmt: skip
    cfg = GatewayConfig(models=[{
        "name": "chat", "routing": {"strategy": "prefix", "scrape_interval_s": 0.2},
        "upstreams": [{"url": u.url} for u in ups],
    }], auth={"enabled": False}, prompts=None)  # fmt: skip
    caplog.set_level(logging.WARNING, logger="llmops.gateway.engine_stats")
    gw = GatewayServer(cfg).start()
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        systems = [f"Tenant {g}. " + SYSTEM for g in range(3)]
        for i in range(30):
            g = i % 3
            messages = _chat(systems[g], f"q{i}")["messages"]
            client.chat.completions.create(model="chat", max_tokens=4, messages=messages)
        by_group: dict[int, set[str]] = {}
        for u in ups:
            for body in u.requests:
                system = body["messages"][0]["content"]
                by_group.setdefault(systems.index(system), set()).add(u.name)
        assert all(len(names) == 1 for names in by_group.values()), by_group
        matched = gw.metric_value("llmops_prefix_matched_blocks_total", model="chat")
        routed = gw.metric_value("llmops_prefix_routed_blocks_total", model="chat")
        assert routed > 0 and matched / routed > 0.7
        assert gw.metric_value("llmops_prefix_index_blocks", model="chat") > 0
        time.sleep(0.5)
        warned = [r.getMessage() for r in caplog.records if "no vLLM metrics" in r.getMessage()]
        assert len(warned) == 1 and ups[2].url in warned[0]  # once, for the one without
    finally:
        gw.stop()
        for u in ups:
            u.stop()
