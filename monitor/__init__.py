"""Monitoring of live traffic: drift against what the evals covered, online quality scores.

Reads what the gateway's observability plug-in writes (the drift store under ``$LLMOPS_HOME``,
traces in Langfuse); ``monitor/cli.py`` is mounted as ``llmops monitor``.
"""

from monitor._drift import DriftReport, InsufficientData, run_drift, save_result, write_textfile
from monitor._quality import (
    LangfuseTraces,
    QualitySummary,
    RagasScorer,
    TracedResponse,
    run_quality,
)
from monitor._reference import Reference, load_reference, save_reference
from monitor._stats import TwoSampleResult, mmd_permutation_test

__all__ = [
    "DriftReport",
    "InsufficientData",
    "LangfuseTraces",
    "QualitySummary",
    "RagasScorer",
    "Reference",
    "TracedResponse",
    "TwoSampleResult",
    "load_reference",
    "mmd_permutation_test",
    "run_drift",
    "run_quality",
    "save_reference",
    "save_result",
    "write_textfile",
]
