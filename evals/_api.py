"""The two operations: evaluate one target, or compare a base and a head target.

Both return :class:`SuiteVerdict`; both raise :class:`EvalError` when no trustworthy verdict can be
produced (bad suite, empty dataset, unknown prompt or model, unreachable gateway), which the CLI
turns into a non-zero exit.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    suite: Suite, ctx: RunContext, base: Side, head: Side, cases: list[Case] | None = None
) -> SuiteVerdict:
    """Run base then head (head reuses base's cached outputs where nothing changed) and gate.

    A prompt that does not exist at the base ref (a new prompt) has no baseline: the head is
    gated on thresholds alone, and the report says so.
    """
    cases = cases if cases is not None else load_dataset(suite)
    head_prompt = _prompt(suite, head)
    try:
        base_prompt = _prompt(suite, base)
    except PromptMissing as e:
        run = await run_suite(suite, cases, ctx, label="head", prompt=head_prompt, model=head.model)
        verdict = gate_run(suite, run)
        verdict.notes.append(f"no baseline, thresholds only: {e}")
        return verdict
    base_run = await run_suite(
        suite, cases, ctx, label="base", prompt=base_prompt, model=base.model
    )
    head_run = await run_suite(
        suite, cases, ctx, label="head", prompt=head_prompt, model=head.model
    )
    return gate_compare(suite, base_run, head_run)
