"""Is a suite big enough for its allowances? Checked before any model is asked.

A gate whose allowed drop (``max_regression``) is smaller than what the suite's cases can detect
fails harmless edits too often to be useful (with the default ``inconclusive: fail``). This
compares, per metric, the minimum detectable regression at 80% power
(``evals._stats.min_detectable``, the number every report shows) with the allowance, and says
how many cases it would take.

The delta sd to plan with is the metric's ``delta_sd`` when the suite states one (measured
between versions that should score alike); else it comes from the suite alone for pass/fail
metrics (the independent-answers bound at the threshold's pass rate, else at 0.5, the worst case)
and from one run otherwise (``evals._gate.planned_sd``): a continuous metric's spread is not in
the file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from evals._gate import planned_sd
from evals._results import RunResult
from evals._stats import binary_delta_sd, cases_needed, min_detectable
from evals._suite import BINARY_METRICS, MetricSpec, Suite

POWER = 0.8

Status = Literal["ok", "underpowered", "needs_run", "no_allowance", "not_gated", "no_scores"]
FAILING: frozenset[str] = frozenset({"underpowered", "no_scores"})


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One metric's power check; ``sd_basis`` says where the planned sd came from."""

    suite: str
    metric: str
    type: str
    n: int
    max_regression: float
    confidence: float
    status: Status
    delta_sd: float | None = None
    sd_basis: str | None = None
    mde_80: float | None = None
    cases_needed_80: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    @property
    def message(self) -> str:
        m = f"`{self.metric}`"
        if self.status == "underpowered" and self.mde_80 is not None:
            return (
                f"{m}: allowed drop {_fmt(self.max_regression)} is below the {_fmt(self.mde_80)} "
                f"this suite can detect at 80% power with {self.n} cases; it needs about "
                f"{self.cases_needed_80} cases"
            )
        if self.status == "ok" and self.mde_80 is not None:
            return (
                f"{m}: detects {_fmt(self.mde_80)} at 80% power with {self.n} cases, within "
                f"the allowed drop {_fmt(self.max_regression)}"
            )
        if self.status == "needs_run":
            return f"{m}: needs a run to plan (use --from-run)"
        if self.status == "no_scores":
            return f"{m}: the run scored no case, so there is no sd to plan with"
        if self.status == "not_gated":
            return f"{m}: reported, not gated (gated: false): not checked"
        return f"{m}: no max_regression set (any significant drop fails): not checked"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed, "message": self.message}


def _static_sd(m: MetricSpec) -> tuple[float, str] | None:
    """The planning sd of a pass/fail metric from the suite file: at the pass rate the threshold
    asks for, else at 0.5 where ``sqrt(2 p (1 - p))`` is largest. None for any other metric."""
    if m.type not in BINARY_METRICS:
        return None
    if m.threshold is not None:
        return binary_delta_sd(m.threshold), f"pass rate {_fmt(m.threshold)} (threshold)"
    return binary_delta_sd(0.5), "pass rate 0.5 (worst case: no threshold)"


def check_power(suite: Suite, n: int, run: RunResult | None = None) -> list[Finding]:
    """Per metric of ``suite`` with ``n`` cases: can it detect its allowed drop at 80% power?

    With ``run`` (one run of the suite) every metric plans with ``planned_sd`` of that run;
    without, pass/fail metrics plan from the suite file and continuous ones are ``needs_run``.
    """
    c = suite.gate.confidence
    out: list[Finding] = []
    for m in suite.metrics:
        base: dict[str, Any] = {
            "suite": suite.name,
            "metric": m.id,
            "type": m.type,
            "n": n,
            "max_regression": m.max_regression,
            "confidence": c,
        }
        if not m.gated:
            out.append(Finding(**base, status="not_gated"))
            continue
        if m.max_regression <= 0:
            out.append(Finding(**base, status="no_allowance"))
            continue
        if m.delta_sd is not None:
            planned: tuple[float, str] | None = (m.delta_sd, "delta_sd (measured, in the suite)")
        elif run is not None:
            sd = planned_sd(m, run)
            if not math.isfinite(sd):
                out.append(Finding(**base, status="no_scores", sd_basis="one run"))
                continue
            planned = (sd, "one run")
        else:
            planned = _static_sd(m)
        if planned is None:
            out.append(Finding(**base, status="needs_run"))
            continue
        sd, basis = planned
        mde = min_detectable(sd, n, confidence=c, power=POWER)
        out.append(
            Finding(
                **base,
                status="underpowered" if mde > m.max_regression else "ok",
                delta_sd=sd,
                sd_basis=basis,
                mde_80=mde,
                cases_needed_80=cases_needed(sd, m.max_regression, confidence=c, power=POWER),
            )
        )
    return out
