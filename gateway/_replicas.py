"""Per-replica state shared by the router, the health checker and the forwarder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway._config import HealthConfig


@dataclass(eq=False, slots=True)
class Replica:
    """One upstream server of one model.

    ``healthy`` comes from active checks; ``ejected_until`` from passive failure counting.
    A replica is tried again once its ejection expires (half-open); a failure then doubles
    the backoff, a success resets it.
    """

    model: str
    url: str
    weight: float = 1.0
    api_key: str | None = None
    in_flight: int = 0
    healthy: bool = True
    consecutive_failures: int = 0
    check_failures: int = 0  # failed active health checks in a row
    ejected_until: float = 0.0
    backoff_s: float = 0.0
    # Seconds with at least one request in flight (the spend allocation's busy time), counted
    # on the 0 -> 1 and 1 -> 0 transitions only; ``since`` is when the replica was added.
    busy_s: float = 0.0
    busy_since: float = 0.0
    since: float = field(default_factory=time.monotonic)
    # What vLLM reports about itself (gateway._engine_stats); zero when unknown.
    waiting: int = 0
    running: int = 0
    kv_usage: float = 0.0
    kv_tokens: int = 0  # KV cache capacity in tokens
    stats_at: float = 0.0
    key: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.url.encode()

    def enter(self) -> None:
        if self.in_flight == 0:
            self.busy_since = time.monotonic()
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.busy_s += time.monotonic() - self.busy_since

    def busy_until(self, now: float) -> float:
        """Busy seconds so far, the open busy stretch included."""
        return self.busy_s + (now - self.busy_since if self.in_flight > 0 else 0.0)

    def available(self, now: float) -> bool:
        return self.healthy and now >= self.ejected_until

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.backoff_s = 0.0

    def record_failure(self, cfg: HealthConfig, now: float | None = None) -> bool:
        """Count a failure; return True when this one ejects the replica."""
        self.consecutive_failures += 1
        if self.consecutive_failures < cfg.failure_threshold:
            return False
        now = time.monotonic() if now is None else now
        self.backoff_s = min(
            cfg.backoff_max_s,
            self.backoff_s * 2 if self.backoff_s else cfg.backoff_initial_s,
        )
        self.ejected_until = now + self.backoff_s
        return True


@dataclass(eq=False, slots=True)
class ModelPool:
    """The replicas serving one canonical model name."""

    name: str
    upstream_name: str
    kind: str
    replicas: list[Replica]
    local: bool = False  # served in-process (a local embedding model), no replicas
    cold_start_s: float | None = None  # hold requests this long while no replica is up

    def any_available(self, now: float | None = None) -> bool:
        if self.local:
            return True
        now = time.monotonic() if now is None else now
        return any(r.available(now) for r in self.replicas)
