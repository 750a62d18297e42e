"""Step-by-step promotion of a variant, gated offline first and guarded online at each step.

It starts only when the offline gate recorded a pass of the candidate against the alias's
baseline model. Each step sets the weights through the gateway's admin API, then holds until
the hold time is over and the gateway's guard reads the candidate as fine with enough
requests. A rollback by the guard (the gateway does it, promotion only notices) ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollout._admin_client import VariantAdmin

if TYPE_CHECKING:
    from evals import ModelGateRecord


class PromotionError(RuntimeError):
    """Promotion cannot start or cannot go on; nothing further was changed."""


@dataclass(frozen=True)
class StepResult:
    weight: float
    held_s: float
    guard: dict[str, Any] | None


def step_weights(status: dict[str, Any], target: str, percent: float) -> dict[str, float]:
    """``target`` at ``percent``; the others share the rest in their current proportions (the
    baseline takes it all when the others have none)."""
    others = {v["model"]: float(v["weight"]) for v in status["variants"] if v["model"] != target}
    rest = 100.0 - percent
    total = sum(others.values())
    if total > 0:
        out = {m: round(rest * w / total, 4) for m, w in others.items()}
    else:
        out = {m: 0.0 for m in others}
        out[status["baseline"]] = rest
    out[target] = percent
    return out


def check_gate(baseline: str, target: str, record_path: Path | None) -> ModelGateRecord:
    from evals import read_model_gate  # the evals package loads numpy: not at import time

    record = read_model_gate(baseline, target, record_path)
    rerun = f"llmops eval compare SUITES --base-model {baseline} --head-model {target}"
    if record is None:
        raise PromotionError(
            f"no offline gate record for {target} against {baseline}: run `{rerun}` first "
            "(or pass --gate-record FILE from the CI run that did)"
        )
    if (record.base_model, record.head_model) != (baseline, target):
        raise PromotionError(
            f"the gate record compares {record.head_model} with {record.base_model}, not "
            f"{target} with {baseline}"
        )
    if not record.passed:
        raise PromotionError(
            f"the offline gate did not pass for {target} against {baseline} (exit "
            f"{record.exit_code} at commit {record.commit or 'unknown'}): fix it and `{rerun}`"
        )
    return record


def promote(
    admin: VariantAdmin,
    alias: str,
    target: str,
    steps: list[float],
    hold_s: float,
    *,
    gate_record: Path | None = None,
    poll_s: float = 5.0,
    max_hold_s: float | None = None,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> list[StepResult]:
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(steps):
        raise PromotionError("--steps must be increasing percentages in (0, 100]")
    status = admin.status(alias)
    models = [v["model"] for v in status["variants"]]
    if target not in models:
        raise PromotionError(f"{target!r} is not a variant of {alias!r} (variants: "
                             f"{', '.join(models)})")  # fmt: skip
    baseline = status["baseline"]
    if target == baseline:
        raise PromotionError(f"{target!r} is the baseline of {alias!r} already")
    record = check_gate(baseline, target, gate_record)
    say(f"offline gate: {target} passed against {baseline} at commit "
        f"{record.commit or 'unknown'} ({len(record.suites)} suites)")  # fmt: skip
    limit = max_hold_s if max_hold_s is not None else max(3 * hold_s, hold_s + 60)
    done: list[StepResult] = []
    for pct in steps:
        admin.set_weights(alias, step_weights(status, target, pct), by="promote")
        say(f"step {pct:g}%: {target} at weight {pct:g}, holding {hold_s:g}s")
        start = time.monotonic()
        while True:
            sleep(poll_s)
            status = admin.status(alias)
            v = next(x for x in status["variants"] if x["model"] == target)
            if v.get("rolled_back"):
                why = v["rolled_back"].get("message") or v["rolled_back"].get("reason")
                raise PromotionError(f"the gateway's guard rolled {target} back at {pct:g}%: "
                                     f"{why}")  # fmt: skip
            guard = v.get("guard") or {}
            held = time.monotonic() - start
            if held >= hold_s and guard.get("status") == "ok":
                done.append(StepResult(pct, held, guard))
                say(f"step {pct:g}% held {held:.0f}s: {guard.get('message')}")
                break
            if held >= limit:
                raise PromotionError(
                    f"step {pct:g}%: after {held:.0f}s the guard still cannot tell "
                    f"({guard.get('message', 'no reading')}); the weights stay at this step"
                )
    say(f"{target} serves {steps[-1]:g}% of {alias}; the gateway wrote the weights into its "
        "config file: commit it")  # fmt: skip
    return done
