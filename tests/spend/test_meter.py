"""The infra-cost meter on a scripted replica timeline (busy stretches set by hand, times passed
in), so the allocation's arithmetic is checked exactly."""

from __future__ import annotations

import pytest

from gateway._replicas import Replica
from gateway.spend import InfraCost, ReplicaMeter

RATE = 3600.0  # $1 a second


def _replica() -> Replica:
    r = Replica(model="m", url="http://r")
    r.since = 0.0
    return r


def _meter(r: Replica, prefill_weight: float = 0.0) -> ReplicaMeter:
    m = ReplicaMeter(r, InfraCost(usd_per_hour=RATE, prefill_weight=prefill_weight), 60.0)
    m._start_busy = 0.0  # the scripted timeline starts with the meter
    return m


def test_sequential_requests_pay_their_own_busy_time_and_idle_is_apart() -> None:
    r = _replica()
    m = _meter(r)
    charges = []
    for i, tokens in enumerate((10, 100, 30)):  # 1 s busy each, then 1 s idle
        r.busy_s += 1.0
        charges.append(m.charge(tokens, now=2.0 * i + 1))
    assert charges == pytest.approx([1.0, 1.0, 1.0])  # sizes differ, each had the replica alone
    assert m.idle_usd(now=6.0) == pytest.approx(3.0)
    assert m.total_usd(now=6.0) == pytest.approx(6.0)
    assert m.allocated_usd + m.idle_usd(now=6.0) == pytest.approx(m.total_usd(now=6.0))


def test_overlapping_requests_share_by_tokens_and_never_exceed_the_busy_cost() -> None:
    r = _replica()
    m = _meter(r)
    m.charge(50, now=0.5)  # a past request: the window's mean is 50 tokens per request
    m.allocated_usd = 0.0
    r.busy_s = 0.0
    # Two requests in flight over 4 s; the first (50 tokens) ends while the other runs.
    r.in_flight, r.busy_since = 1, 0.0  # the other one is still in flight
    first = m.charge(50, now=4.0)
    assert first == pytest.approx(2.0)  # half: its tokens against the other's expected 50
    r.in_flight, r.busy_s = 0, 4.0  # the second ends at 4 s too, with 150 tokens
    second = m.charge(150, now=4.0)
    assert second == pytest.approx(2.0)  # what is left: the charges add up to the busy cost
    assert m.allocated_usd == pytest.approx(4.0)


def test_prefill_weight_and_the_estimate_rate() -> None:
    r = _replica()
    m = _meter(r, prefill_weight=0.5)
    assert m.weighted(prompt=100, completion=10) == 60
    r.busy_s = 2.0
    assert m.charge(m.weighted(100, 10), now=2.0) == pytest.approx(2.0)
    assert m.usd_per_token == pytest.approx(2.0 / 60)
    assert m.charge(0, now=2.0) == 0.0  # nothing served, nothing charged
