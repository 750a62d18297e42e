"""The guard's latency judgement: a ratio over the baseline's p95 and an absolute floor, so a
fast backend's millisecond noise is no regression while a real slowdown still is."""

from __future__ import annotations

from gateway._variants_config import GuardConfig
from gateway.variants._guard import judge
from gateway.variants._window import Tally, record_into


def _tally(latency_s: float, n: int = 40) -> Tally:
    t = Tally()
    for _ in range(n):
        record_into(t, ok=True, error=False, latency_s=latency_s)
    return t


def test_milliseconds_of_noise_are_no_breach_but_a_slowdown_is() -> None:
    cfg = GuardConfig(min_requests=20)
    # 20 ms against 6 ms: three times the p95, but 14 ms of it.
    noise = judge(cfg, _tally(0.020), _tally(0.006))
    assert noise.status == "ok", noise.message
    slow = judge(cfg, _tally(0.9), _tally(0.3))
    assert slow.status == "breach" and slow.reason == "latency"
    assert "at least +50 ms" in slow.message
    strict = judge(GuardConfig(min_requests=20, min_p95_latency_increase_s=0), _tally(0.020),
                   _tally(0.006))  # fmt: skip
    assert strict.status == "breach"
