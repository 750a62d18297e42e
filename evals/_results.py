"""Result records: what a run produced, per case and repeat, and what a comparison decided.

Plain pydantic models so the JSON report is their dump and every other report renders from it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


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
    base_mean: float | None = None
    head_mean: float | None = None
    delta: float | None = Field(None, description="head - base over paired cases, raw scale")
    ci_low: float | None = None
    ci_high: float | None = None
    n_paired: int = 0
    status: Status = "pass"
    reasons: list[str] = Field(default_factory=list)
    deltas: dict[str, float] = Field(default_factory=dict, description="per case, head - base")


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
