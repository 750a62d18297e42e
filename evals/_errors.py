"""Errors of the evals package. Any of them ends a run with a non-zero exit (fail closed)."""

from __future__ import annotations


class EvalError(Exception):
    """Base: the evaluation could not produce a trustworthy verdict."""


class SuiteError(EvalError):
    """The suite file or its dataset is invalid."""


class TargetError(EvalError):
    """The prompt version or model to evaluate cannot be resolved, or the gateway is unreachable."""


class PromptMissing(TargetError):
    """The prompt does not exist at that ref (e.g. a new prompt has no baseline)."""
