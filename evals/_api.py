"""The two operations: evaluate one target, or compare a base and a head target.

Both return :class:`SuiteVerdict`; both raise :class:`EvalError` when no trustworthy verdict can be
produced (bad suite, empty dataset, unknown prompt or model, unreachable gateway), which the CLI
turns into a non-zero exit.
"""

from __future__ import annotations

from dataclasses import dataclass

from evals._base_suite import BaseGate
from evals._dataset import Case, load_dataset
from evals._errors import PromptMissing
from evals._gate import gate_compare, gate_run
from evals._prompt_refs import ResolvedPrompt, resolve_prompt
from evals._results import SuiteVerdict
from evals._runner import RunContext, run_suite
from evals._suite import Suite


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison: a git ref for the prompt (None: working tree) and a model."""

    ref: str | None = None
    model: str | None = None
    version: str | None = None  # pin a prompt version or label instead of the current one


def _prompt(suite: Suite, side: Side) -> ResolvedPrompt | None:
    if suite.target.prompt is None:
        return None
    return resolve_prompt(
        suite.repo_path(), suite.target.prompt, side.ref, suite.prompts_dir, side.version
    )


async def evaluate(
    suite: Suite, ctx: RunContext, side: Side | None = None, cases: list[Case] | None = None
) -> SuiteVerdict:
    side = side or Side()
    cases = cases if cases is not None else load_dataset(suite)
    run = await run_suite(
        suite, cases, ctx, label="run", prompt=_prompt(suite, side), model=side.model
    )
    return gate_run(suite, run)


async def compare(
    suite: Suite,
    ctx: RunContext,
    base: Side,
    head: Side,
    cases: list[Case] | None = None,
    gate: BaseGate | None = None,
) -> SuiteVerdict:
    """Run base then head (head reuses base's cached outputs where nothing changed) and gate.

    With ``gate`` (the suite as at the base ref) both sides are judged by the base's metrics,
    gate settings and cases: a head that removed cases is still scored on them, cases the head
    added are scored and reported, not gated, and what the head changed in the gate is listed.
    A suite or prompt that does not exist at the base has no baseline: the head is gated on
    thresholds alone, and the report says so.
    """
    head_cases = cases if cases is not None else load_dataset(suite)
    judge, gated = suite, head_cases
    if gate is not None:
        if gate.suite is None:
            verdict = await evaluate(suite, ctx, head, head_cases)
            verdict.notes.append(f"suite is new at {gate.ref}: no baseline, thresholds only")
            return verdict
        judge, gated = gate.suite, gate.cases
    ids = {c.id for c in gated}
    added = [c for c in head_cases if c.id not in ids]
    head_suite = _with_target(judge, suite)
    head_prompt = _prompt(head_suite, head)
    try:
        base_prompt = _prompt(judge, base)
    except PromptMissing as e:
        run = await run_suite(
            head_suite, gated, ctx, label="head", prompt=head_prompt, model=head.model
        )
        verdict = gate_run(judge, run)
        verdict.notes.append(f"no baseline, thresholds only: {e}")
        return _with_gate(verdict, gate)
    base_run = await run_suite(
        judge, gated, ctx, label="base", prompt=base_prompt, model=base.model
    )
    head_run = await run_suite(
        head_suite, gated + added, ctx, label="head", prompt=head_prompt, model=head.model
    )
    verdict = gate_compare(judge, base_run, head_run.restricted(ids))
    verdict.head = head_run
    verdict.added_cases = {
        c.case_id: dict(c.scores) for c in head_run.cases if c.case_id not in ids
    }
    return _with_gate(verdict, gate)


def _with_target(judge: Suite, head: Suite) -> Suite:
    """The base's suite with the head's target (prompt name, model, parameters): what is
    evaluated is the head's, how it is judged the base's."""
    if judge is head:
        return head
    out = judge.model_copy(update={"target": head.target})
    out.path = judge.path
    return out


def _with_gate(verdict: SuiteVerdict, gate: BaseGate | None) -> SuiteVerdict:
    if gate is not None:
        verdict.gate_ref = gate.ref
        verdict.gate_changes = list(gate.changes)
        verdict.gate_diff = gate.diff
    return verdict
