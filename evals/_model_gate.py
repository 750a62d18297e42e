"""The record that a candidate model passed the offline gate against a baseline model.

``llmops eval compare --base-model A --head-model B`` writes it (pass or fail) beside its
reports and under ``$LLMOPS_HOME/evals/model-gates``; ``llmops promote`` reads it and starts
only when the last comparison of that pair passed. The record names the commit the suites were
read at, so the pass can be traced to the exact gate that judged it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from common import Git, GitError, llmops_home

RECORD_NAME = "model-gate.json"


class SuiteOutcome(BaseModel):
    suite: str
    passed: bool
    gate_changed: bool = False


class ModelGateRecord(BaseModel):
    base_model: str
    head_model: str
    passed: bool = Field(description="the comparison exited 0: every suite passed, gate unchanged")
    exit_code: int
    commit: str | None = Field(None, description="git commit of the suites' repository")
    suites: list[SuiteOutcome]
    at: float = Field(default_factory=time.time)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def gates_dir(home: Path | None = None) -> Path:
    return llmops_home(home) / "evals" / "model-gates"


def record_path(base_model: str, head_model: str, home: Path | None = None) -> Path:
    return gates_dir(home) / f"{_slug(head_model)}--vs--{_slug(base_model)}.json"


def head_commit(repo: Path) -> str | None:
    try:
        return Git(repo).run("rev-parse", "HEAD").decode().strip() or None
    except GitError:
        return None


def write_model_gate(record: ModelGateRecord, *folders: Path) -> list[Path]:
    """Write the record into the home's gate folder and each of ``folders`` (the reports)."""
    data = record.model_dump_json(indent=2)
    paths = [record_path(record.base_model, record.head_model), *(f / RECORD_NAME for f in folders)]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data + "\n", encoding="utf-8")
    return paths


def read_model_gate(
    base_model: str, head_model: str, path: Path | None = None
) -> ModelGateRecord | None:
    """The last recorded comparison of ``head_model`` against ``base_model`` (or the record
    at ``path``, e.g. a CI artifact); None when there is none."""
    p = path or record_path(base_model, head_model)
    try:
        raw: Any = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return ModelGateRecord.model_validate(raw)
