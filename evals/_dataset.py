"""Datasets: one JSON object per line, validated against what the suite's metrics need.

A line holds the input (``vars`` for a prompt template and/or ``messages``) and what the metrics
compare against (``reference``/``references``, ``contexts``, ``gold_ids``). Checking this up front
means a metric never silently scores a case it has nothing to compare with.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common import QUESTION_VARS
from evals._errors import SuiteError
from evals._suite import NEEDS_CONTEXTS, NEEDS_REFERENCE, RETRIEVAL_METRICS, Suite


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    vars: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    reference: str | None = None
    references: list[str] = Field(default_factory=list)
    contexts: list[str] = Field(default_factory=list)
    gold_ids: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _merge_refs(self) -> Case:
        if self.reference is not None and self.reference not in self.references:
            self.references = [self.reference, *self.references]
        return self

    def question(self, var: str | None) -> str:
        """The user's question, for judges that ask "does the answer address the question"."""
        if var is not None and var in self.vars:
            return str(self.vars[var])
        for k in QUESTION_VARS:
            if isinstance(self.vars.get(k), str):
                return str(self.vars[k])
        for m in reversed(self.messages or []):
            if m.get("role") == "user" and isinstance(m.get("content"), str):
                return str(m["content"])
        return json.dumps(self.vars, sort_keys=True, ensure_ascii=False)


def load_dataset(suite: Suite, limit: int | None = None) -> list[Case]:
    """Read the suite's JSONL dataset; raise :class:`SuiteError` on any bad line or empty file."""
    path = suite.dataset_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SuiteError(f"dataset {path}: cannot read: {e}") from None
    cases = parse_dataset(suite, text, str(path))
    return cases[:limit] if limit else cases


def parse_dataset(suite: Suite, text: str, path: str) -> list[Case]:
    """The cases of a JSONL text (``path`` names it in errors: a file, or ``ref:path``)."""
    lines = text.splitlines()
    cases: list[Case] = []
    seen: set[str] = set()
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise SuiteError(f"{path}:{no}: not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise SuiteError(f"{path}:{no}: each line must be a JSON object")
        obj.setdefault("id", f"case-{no}")
        obj["id"] = str(obj["id"])
        try:
            case = Case.model_validate(obj)
        except ValidationError as e:
            err = e.errors()[0]
            raise SuiteError(
                f"{path}:{no}: {'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
            ) from None
        if case.id in seen:
            raise SuiteError(f"{path}:{no}: duplicate case id {case.id!r}")
        seen.add(case.id)
        _check_case(suite, case, f"{path}:{no}")
        cases.append(case)
    if not cases:
        raise SuiteError(f"dataset {path} has no cases")
    return cases


def _check_case(suite: Suite, case: Case, where: str) -> None:
    if suite.target.prompt is None and not case.messages:
        raise SuiteError(f"{where}: no target.prompt in the suite, so each case needs 'messages'")
    for m in suite.metrics:
        if m.type in NEEDS_REFERENCE and not case.references:
            raise SuiteError(f"{where}: metric {m.id!r} needs 'reference' or 'references'")
        if m.type == "contains" and m.value is None and not case.references:
            raise SuiteError(f"{where}: metric {m.id!r} has no 'value' and the case no reference")
        if m.type in NEEDS_CONTEXTS and not case.contexts and suite.target.render == "local":
            raise SuiteError(f"{where}: metric {m.id!r} needs 'contexts'")
        if m.type in RETRIEVAL_METRICS and not case.gold_ids:
            raise SuiteError(f"{where}: metric {m.id!r} needs 'gold_ids'")
