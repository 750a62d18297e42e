"""Request fields that carry the user's question.

Prompt variables under these names are read as the question by the evals (a dataset case's
``question``), the drift sampler and the drift reference alike, so they must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUESTION_VARS: tuple[str, ...] = ("question", "query", "input", "text", "prompt")


def question_in(variables: Mapping[str, Any], *, join_others: bool = False) -> str | None:
    """The first non-empty string under a question name; with ``join_others``, else every
    non-empty string value joined by newlines (a template whose question has another name)."""
    for k in QUESTION_VARS:
        v = variables.get(k)
        if isinstance(v, str) and v:
            return v
    if join_others:
        strings = [v for v in variables.values() if isinstance(v, str) and v]
        if strings:
            return "\n".join(strings)
    return None
