"""The suite file: what is evaluated, on which data, with which metrics, and how strictly.

Modelled on promptfoo's config (a target, a dataset of cases, assertions with thresholds), with
what a promotion gate needs on top: an allowed regression per metric, repeats, a seed, and limits
on errors and judge failures. Every field is validated here, before a single request is sent, so
a typo fails the run instead of silently evaluating something else. See docs/evals.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from common import openai_base_url
from evals._errors import SuiteError

MetricType = Literal[
    "exact_match",
    "contains",
    "regex",
    "is_json",
    "json_schema",
    "length",
    "semantic_similarity",
    "faithfulness",
    "answer_relevancy",
    "context_precision",
    "context_recall",
    "recall_at_k",
    "mrr",
    "ndcg_at_k",
    "latency_ms",
    "completion_tokens",
    "total_tokens",
]

JUDGED_METRICS = frozenset(
    {"faithfulness", "answer_relevancy", "context_precision", "context_recall"}
)
RETRIEVAL_METRICS = frozenset({"recall_at_k", "mrr", "ndcg_at_k"})
LOWER_IS_BETTER = frozenset({"latency_ms", "completion_tokens", "total_tokens"})
# Scores of 0 or 1 per answer (a case's score is their mean over its repeats).
BINARY_METRICS = frozenset({"exact_match", "contains", "regex", "is_json", "json_schema", "length"})
# Metrics that read the case's reference answer(s) / contexts / gold ids.
NEEDS_REFERENCE = frozenset(
    {"exact_match", "semantic_similarity", "context_precision", "context_recall"}
)
NEEDS_CONTEXTS = frozenset({"faithfulness", "context_precision", "context_recall"})

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
BASE_URL_ENV = "LLMOPS_EVAL_BASE_URL"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetSpec(_Strict):
    """What answers the cases: a prompt (name; version from git) and/or a model, via the gateway."""

    prompt: str | None = Field(None, description="prompt name in prompts/; None = raw messages")
    model: str | None = Field(None, description="model name at the gateway; default: template's")
    base_url: str | None = Field(
        None, description=f"gateway OpenAI root; default ${BASE_URL_ENV} or {DEFAULT_BASE_URL}"
    )
    api_key_env: str = Field("LLMOPS_API_KEY", description="env var holding the gateway key")
    render: Literal["gateway", "local"] = Field(
        "gateway",
        description="gateway: send the prompt reference, the gateway renders it (what production "
        "does); local: render here with the prompts package and send plain messages",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="sampling overrides")
    timeout_s: float = Field(120.0, gt=0)
    citations_field: str = Field(
        "citations", description="dotted path of the retrieval hits in the JSON response"
    )

    @field_validator("params")
    @classmethod
    def _no_reserved(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted({"model", "messages", "prompt", "stream", "n"} & v.keys())
        if bad:
            raise ValueError(f"params may not set {', '.join(bad)}")
        return v

    def resolved_base_url(self) -> str:
        url = os.environ.get(BASE_URL_ENV) or self.base_url or DEFAULT_BASE_URL
        return openai_base_url(url)

    def api_key(self) -> str:
        # The gateway may run without auth; the SDK still wants a non-empty string.
        return os.environ.get(self.api_key_env) or "sk-no-key"


class JudgeSpec(_Strict):
    """The LLM judge for ragas metrics, reached through the same gateway by default."""

    model: str | None = Field(None, description="judge model at the gateway; default target's")
    base_url: str | None = None
    api_key_env: str | None = None
    max_failure_rate: float = Field(
        0.1, ge=0, le=1, description="judge failures / judged scores above this fail the gate"
    )
    timeout_s: float = Field(180.0, gt=0)
    concurrency: int | None = Field(None, ge=1)


class MetricSpec(_Strict):
    """One metric; ``threshold`` and ``max_regression`` are on the metric's own scale."""

    type: MetricType
    name: str | None = Field(None, description="unique id in the suite; default: the type")
    threshold: float | None = Field(
        None, description="head mean must be >= (or <= for lower-is-better metrics)"
    )
    max_regression: float = Field(
        0.0, ge=0, description="allowed worsening of the mean before a significant drop fails"
    )
    gated: bool = Field(
        True,
        description=(
            "false: a compare reports the metric's delta, interval and power and never fails on "
            "them (a threshold still applies); for metrics too sparse for a paired interval"
        ),
    )
    delta_sd: float | None = Field(
        None,
        gt=0,
        description=(
            "measured sd of the per-case deltas between two versions that should score alike "
            "(bench/evals_gate_power.py prints it): plan and validate use it instead of the "
            "independent-answers bound, which ignores how often both sides answer alike"
        ),
    )
    direction: Literal["higher", "lower"] | None = None
    # options, by type
    value: str | list[str] | None = Field(None, description="contains: needle(s); default refs")
    match: Literal["any", "all"] = "any"
    pattern: str | None = None
    ignore_case: bool = False
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    schema_file: str | None = None
    min: float | None = None
    max: float | None = None
    unit: Literal["chars", "words"] = "chars"
    k: int = Field(5, ge=1)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def id(self) -> str:
        return self.name or self.type

    @property
    def higher_is_better(self) -> bool:
        if self.direction is not None:
            return self.direction == "higher"
        return self.type not in LOWER_IS_BETTER

    @property
    def judged(self) -> bool:
        return self.type in JUDGED_METRICS

    @model_validator(mode="after")
    def _options(self) -> MetricSpec:
        if self.type == "regex":
            if not self.pattern:
                raise ValueError("regex needs 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"pattern does not compile: {e}") from None
        if self.type == "json_schema" and self.json_schema is None and not self.schema_file:
            raise ValueError("json_schema needs 'schema' or 'schema_file'")
        if self.type == "length" and self.min is None and self.max is None:
            raise ValueError("length needs 'min' and/or 'max'")
        return self


class GateSpec(_Strict):
    """How a comparison turns numbers into a verdict (see docs/evals.md, "The gate")."""

    confidence: float = Field(0.95, gt=0.5, lt=1)
    bootstrap_samples: int = Field(2000, ge=200)
    inconclusive: Literal["pass", "fail"] = Field(
        "fail",
        description="verdict when the CI straddles -max_regression: fail (the default) passes "
        "only what is shown to be no worse than allowed",
    )
    min_cases: int = Field(5, ge=1, description="fewer scored cases than this is an error")
    max_error_rate: float = Field(0.0, ge=0, le=1, description="failed generations allowed")


class Suite(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    target: TargetSpec = Field(default_factory=TargetSpec)
    dataset: str = Field(description="JSONL path, relative to the suite file")
    metrics: list[MetricSpec] = Field(min_length=1)
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    repeats: int = Field(1, ge=1, le=100)
    concurrency: int = Field(4, ge=1, le=256)
    seed: int = 0
    question_var: str | None = Field(
        None, description="variable holding the user's question (ragas metrics); default guessed"
    )
    repo: str | None = Field(None, description="git repo of the prompts; default: the suite's")
    prompts_dir: str = "prompts"

    # set by load_suite, never by the file
    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path | None:
        return self._path

    @path.setter
    def path(self, value: Path | None) -> None:
        self._path = value

    @model_validator(mode="after")
    def _unique_metric_ids(self) -> Suite:
        seen: set[str] = set()
        for m in self.metrics:
            if m.id in seen:
                raise ValueError(f"metric id {m.id!r} used twice; give one a 'name'")
            seen.add(m.id)
        return self

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def dataset_path(self) -> Path:
        p = Path(self.dataset)
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def repo_path(self) -> Path:
        if self.repo is not None:
            p = Path(self.repo)
            return p if p.is_absolute() else (self.base_dir / p).resolve()
        from evals._prompt_refs import git_toplevel

        return git_toplevel(self.base_dir)

    def judge_model(self) -> str | None:
        return self.judge.model or self.target.model


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raise :class:`SuiteError` with a readable message."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SuiteError(f"{p}: cannot read: {e}") from None
    return parse_suite(text, p.resolve(), str(p))


def parse_suite(text: str, path: Path, where: str) -> Suite:
    """A suite from its YAML text; ``path`` is where it lives (relative paths start there),
    ``where`` names it in errors (a file, or ``ref:path`` for one read from git)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SuiteError(f"{where}: YAML error: {e}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: a suite is a YAML mapping")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as e:
        parts = [
            f"{'.'.join(str(x) for x in err['loc']) or 'suite'}: {err['msg']}" for err in e.errors()
        ]
        raise SuiteError(f"{where}: " + "; ".join(parts)) from None
    suite.path = path
    return suite
