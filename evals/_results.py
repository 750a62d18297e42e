"""Result records: what a run produced, per case and repeat, and what a comparison decided.

Plain pydantic models so the JSON report is their dump and every other report renders from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import fmean
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from evals._suite import Suite


class Generation(BaseModel):
    """One answer from the gateway (or the error that replaced it)."""

    text: str = ""
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    citations: list[str] = Field(default_factory=list)
    contexts: list[str] = Field(default_factory=list)
    served_version: str | None = None
    error: str | None = None
    cached: bool = False


class RepeatResult(BaseModel):
    repeat: int
    generation: Generation
    scores: dict[str, float | None] = Field(default_factory=dict)
    judge_errors: dict[str, str] = Field(default_factory=dict)


class CaseResult(BaseModel):
    case_id: str
    repeats: list[RepeatResult]
    scores: dict[str, float | None] = Field(
        default_factory=dict, description="mean over the repeats that produced a score"
    )
    input: dict[str, Any] = Field(default_factory=dict)
    references: list[str] = Field(default_factory=list)


class TargetInfo(BaseModel):
    label: str
    prompt: str | None = None
    version: str | None = None
    commit: str | None = None
    ref: str | None = None
    model: str | None = None
    base_url: str = ""
    render: str = "gateway"
    prompt_text: str | None = Field(
        None, description="the prompt template as evaluated (template_source), for the diff"
    )


def template_source(template: object) -> str | None:
    """A parsed prompt template as canonical YAML (multi-line strings as blocks, no folding), so
    the report can diff base against head line by line; None for anything else."""
    dump = getattr(template, "model_dump", None)
    if dump is None:
        return None
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(d: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
        return d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)

    _Dumper.add_representer(str, _str)
    data = dump(mode="json", exclude_defaults=True, by_alias=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**6)


def metric_means(cases: list[CaseResult], metric_ids: Iterable[str]) -> dict[str, float | None]:
    """Each metric's mean over the cases that have a score (None when none has)."""
    means: dict[str, float | None] = {}
    for mid in metric_ids:
        vals = [x for x in (c.scores.get(mid) for c in cases) if x is not None]
        means[mid] = fmean(vals) if vals else None
    return means


class RunResult(BaseModel):
    suite: str
    target: TargetInfo
    cases: list[CaseResult]
    generations: int = 0
    generation_errors: int = 0
    judge_calls: int = 0
    judge_failures: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    wall_s: float = 0.0
    means: dict[str, float | None] = Field(default_factory=dict)

    def restricted(self, case_ids: set[str]) -> RunResult:
        """The same run over ``case_ids`` only (means recomputed; counters kept, so the health
        checks still see every generation the run made)."""
        cases = [c for c in self.cases if c.case_id in case_ids]
        return self.model_copy(update={"cases": cases, "means": metric_means(cases, self.means)})

    @property
    def error_rate(self) -> float:
        return self.generation_errors / self.generations if self.generations else 1.0

    @property
    def judge_failure_rate(self) -> float:
        return self.judge_failures / self.judge_calls if self.judge_calls else 0.0


Status = Literal["pass", "fail", "inconclusive", "error"]


class MetricVerdict(BaseModel):
    """One metric of a comparison (or of a single run, where base fields are None)."""

    metric: str
    type: str
    higher_is_better: bool = True
    threshold: float | None = None
    max_regression: float = 0.0
    gated: bool = True
    base_mean: float | None = None
    head_mean: float | None = None
    delta: float | None = Field(None, description="head - base over paired cases, raw scale")
    ci_low: float | None = None
    ci_high: float | None = None
    n_paired: int = 0
    status: Status = "pass"
    reasons: list[str] = Field(default_factory=list)
    deltas: dict[str, float] = Field(default_factory=dict, description="per case, head - base")
    n_imputed: int = Field(
        0, description="paired cases where a side had no score, counted as a loss for the head"
    )
    delta_sd: float | None = Field(None, description="sd of the per-case deltas (or planned)")
    mde_80: float | None = Field(None, description="minimum detectable regression, 80% power")
    mde_95: float | None = Field(None, description="minimum detectable regression, 95% power")
    cases_needed_80: int | None = Field(
        None, description="paired cases for max_regression to be detectable at 80% power"
    )
    cases_needed_95: int | None = None


class GateSettings(BaseModel):
    """The suite settings a verdict was decided with (``gate``, ``judge.max_failure_rate``,
    repeats, seed), so a report can say how strict the gate was."""

    confidence: float = 0.95
    bootstrap_samples: int = 2000
    inconclusive: Literal["pass", "fail"] = "fail"
    min_cases: int = 5
    max_error_rate: float = 0.0
    judge_max_failure_rate: float = 0.1
    repeats: int = 1
    seed: int = 0

    @classmethod
    def of(cls, suite: Suite) -> GateSettings:
        g = suite.gate
        return cls(
            confidence=g.confidence,
            bootstrap_samples=g.bootstrap_samples,
            inconclusive=g.inconclusive,
            min_cases=g.min_cases,
            max_error_rate=g.max_error_rate,
            judge_max_failure_rate=suite.judge.max_failure_rate,
            repeats=suite.repeats,
            seed=suite.seed,
        )


class SuiteVerdict(BaseModel):
    suite: str
    mode: Literal["run", "compare"]
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    metrics: list[MetricVerdict] = Field(default_factory=list)
    base: RunResult | None = None
    head: RunResult
    confidence: float = 0.95
    gate: GateSettings | None = Field(None, description="settings used; None in older reports")
    gate_ref: str | None = Field(None, description="git ref the gate was read from")
    gate_changes: list[str] = Field(
        default_factory=list, description="what the head changed in the gate (judged by the base's)"
    )
    gate_diff: str = ""
    added_cases: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="cases only the head has: their scores, not gated"
    )

    @property
    def gate_changed(self) -> bool:
        return bool(self.gate_changes)
