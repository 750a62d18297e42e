"""Prometheus metrics of the gateway, in a registry owned by the app (no global state)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
)  # fmt: skip


class ChildCache:
    """Metric children by label values, each made once: ``metric.labels()`` takes a lock and
    checks its arguments on every call, more than the request path can pay per metric."""

    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[tuple[object, ...], Any] = {}

    def __call__(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


class GatewayMetrics:
    """Label children are cached: ``labels()`` costs more than the observation itself."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmops_requests",
            "Requests by model, route and status",
            ["model", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "llmops_request_duration_seconds",
            "Time from request to last byte",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "llmops_time_to_first_token_seconds",
            "Time from request to first streamed chunk",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "llmops_tokens", "Tokens reported in upstream usage", ["model", "type"], registry=r
        )
        self.upstream_errors = Counter(
            "llmops_upstream_errors",
            "Failed upstream attempts",
            ["model", "replica", "reason"],
            registry=r,
        )
        self.retries = Counter(
            "llmops_retries", "Requests retried on another replica", ["model"], registry=r
        )
        self.in_flight = Gauge(
            "llmops_in_flight_requests",
            "Requests in flight per replica",
            ["model", "replica"],
            registry=r,
        )
        self.replica_healthy = Gauge(
            "llmops_replica_healthy", "1 when the replica is healthy and not ejected",
            ["model", "replica"], registry=r,
        )  # fmt: skip
        self._child = ChildCache()

    def observe_request(self, model: str, route: str, status: int, seconds: float) -> None:
        self._child(self.requests, model, route, str(status)).inc()
        self._child(self.latency, model, route).observe(seconds)

    def observe_ttft(self, model: str, route: str, seconds: float) -> None:
        self._child(self.ttft, model, route).observe(seconds)

    def observe_usage(self, model: str, usage: dict[str, object]) -> None:
        for field, kind in (("prompt_tokens", "prompt"), ("completion_tokens", "completion")):
            n = usage.get(field)
            if isinstance(n, int) and n > 0:
                self._child(self.tokens, model, kind).inc(n)

    def upstream_error(self, model: str, replica: str, reason: str) -> None:
        self._child(self.upstream_errors, model, replica, reason).inc()

    def retry(self, model: str) -> None:
        self._child(self.retries, model).inc()

    def set_in_flight(self, model: str, replica: str, n: int) -> None:
        self._child(self.in_flight, model, replica).set(n)

    def set_healthy(self, model: str, replica: str, healthy: bool) -> None:
        self._child(self.replica_healthy, model, replica).set(1 if healthy else 0)
