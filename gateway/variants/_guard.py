"""The guard's judgement of one variant against the baseline variant, over one window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway._variants_config import GuardConfig
from gateway.variants._window import Tally

GuardStatus = Literal["ok", "breach", "insufficient"]


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    status: GuardStatus
    reason: str | None  # "error_rate" | "latency" on a breach
    message: str
    requests: int
    baseline_requests: int
    error_rate: float
    baseline_error_rate: float
    p95_s: float | None
    baseline_p95_s: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "requests": self.requests,
            "baseline_requests": self.baseline_requests,
            "error_rate": round(self.error_rate, 4),
            "baseline_error_rate": round(self.baseline_error_rate, 4),
            "p95_s": self.p95_s,
            "baseline_p95_s": self.baseline_p95_s,
        }


def judge(cfg: GuardConfig, variant: Tally, baseline: Tally) -> GuardVerdict:
    """Breach when the variant's error rate exceeds the baseline's by more than the margin, or
    its p95 latency exceeds the baseline's by more than the ratio and the absolute floor, each
    with at least ``min_requests`` of the variant in the window.

    A baseline with fewer requests than that (a variant promoted to most of the traffic) is
    read as error-free and its latency as unknown: the error margin then caps the variant's own
    error rate, and latency is not judged.
    """
    p95, base_p95 = variant.quantile(0.95), baseline.quantile(0.95)
    base_known = baseline.n >= cfg.min_requests
    base_err = baseline.error_rate if base_known else 0.0

    def verdict(status: GuardStatus, reason: str | None, message: str) -> GuardVerdict:
        return GuardVerdict(
            status, reason, message, variant.n, baseline.n, variant.error_rate,
            baseline.error_rate, p95, base_p95,
        )  # fmt: skip

    if variant.n < cfg.min_requests:
        return verdict(
            "insufficient",
            None,
            f"{variant.n} of {cfg.min_requests} requests needed in the last {cfg.window_s:g}s",
        )
    excess = variant.error_rate - base_err
    if excess > cfg.max_error_rate_increase:
        return verdict(
            "breach",
            "error_rate",
            f"error rate {variant.error_rate:.1%} vs baseline {base_err:.1%} "
            f"(allowed +{cfg.max_error_rate_increase:.1%}) over {variant.n} requests",
        )
    if base_known and p95 is not None and base_p95 is not None:
        if (
            p95 > base_p95 * cfg.max_p95_latency_ratio
            and p95 - base_p95 > cfg.min_p95_latency_increase_s
        ):
            return verdict(
                "breach",
                "latency",
                f"p95 latency {p95 * 1000:.0f} ms vs baseline {base_p95 * 1000:.0f} ms "
                f"(allowed x{cfg.max_p95_latency_ratio:g}, at least "
                f"+{cfg.min_p95_latency_increase_s * 1000:.0f} ms)",
            )
    if not base_known:
        return verdict(
            "ok",
            None,
            f"error rate {variant.error_rate:.1%} within {cfg.max_error_rate_increase:.1%}; "
            f"the baseline has {baseline.n} requests, too few to compare latency",
        )
    return verdict("ok", None, "within the margins of the baseline")
