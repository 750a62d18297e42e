"""The labels file: named pointers to prompt versions, changed by pull request like templates.

Format (``prompts/labels.yaml``; the name ``labels`` is reserved and is never read as a template)::

    labels:
      staging:
        summarise: 3f2a9c1b7d0e          # pin: requests naming "staging" get this version
      canary:
        rag-answer: {version: 9d1c0b4e2a77, weight: 0.1}   # 10% of production traffic

A target with a ``weight`` diverts that share of *production* traffic (requests naming no version,
or ``production``) to its version, sticky per user. Naming the label itself always gets its version.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RESERVED_LABELS = frozenset({"production", "latest"})
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class LabelTarget(BaseModel):
    """The version a label points to for one prompt, and its traffic share if it is a canary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=4)
    weight: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"version": data} if isinstance(data, str) else data


class LabelsFile(BaseModel):
    """``labels: {LABEL: {PROMPT: VERSION | {version, weight}}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: dict[str, dict[str, LabelTarget]] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _names(cls, v: dict[str, dict[str, LabelTarget]]) -> dict[str, dict[str, LabelTarget]]:
        for label in v:
            if label in RESERVED_LABELS:
                raise ValueError(f"label {label!r} is reserved")
            if not _LABEL_RE.match(label):
                raise ValueError(f"label {label!r} must match [A-Za-z][A-Za-z0-9_.-]*")
            if re.fullmatch(r"[0-9a-f]{4,}", label):
                raise ValueError(f"label {label!r} looks like a version id")
        weights: dict[str, float] = {}
        for targets in v.values():
            for prompt, t in targets.items():
                weights[prompt] = weights.get(prompt, 0.0) + (t.weight or 0.0)
        over = sorted(p for p, w in weights.items() if w > 1.0 + 1e-9)
        if over:
            raise ValueError(f"weights of {', '.join(over)} add up to more than 1")
        return v


def bucket(name: str, user: str | None) -> float:
    """A number in [0, 1): stable per (prompt, user), random without a user.

    Salting with the prompt name keeps one user from being the canary of every prompt.
    """
    if user is None or user == "":
        return random.random()
    digest = hashlib.blake2b(f"{name}\0{user}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64
