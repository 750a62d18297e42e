"""Langfuse tracing, feedback and drift sampling for the gateway.

Public face: the config models, the plug-in (``observability_plugin(gw)``) and what
``monitor`` shares with the gateway (the drift store, the embedding loader, the drift gauges).
Only the config is imported eagerly: ``gateway.config`` imports this package, and the rest
imports ``gateway`` modules (a cycle otherwise).
"""

from __future__ import annotations

import importlib
from typing import Any

from gateway.observability.config import (
    DriftSamplingConfig,
    FeedbackConfig,
    LangfuseConfig,
    ObservabilityConfig,
    RedactionConfig,
    TracingConfig,
    llmops_home,
)

_LAZY = {
    "drift_families": "drift_metrics",
    "read_results": "drift_metrics",
    "DriftStore": "drift_store",
    "Sample": "drift_store",
    "load_embedder": "embed",
    "model_label": "embed",
    "Observability": "plugin",
    "observability_plugin": "plugin",
    "Redactor": "redact",
    "TraceHandle": "tracing",
    "Tracer": "tracing",
    "trace_id_for": "tracing",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"gateway.observability.{mod}"), name)


__all__ = [
    "DriftSamplingConfig",
    "DriftStore",
    "FeedbackConfig",
    "LangfuseConfig",
    "Observability",
    "ObservabilityConfig",
    "RedactionConfig",
    "Redactor",
    "Sample",
    "TraceHandle",
    "Tracer",
    "TracingConfig",
    "drift_families",
    "llmops_home",
    "load_embedder",
    "model_label",
    "observability_plugin",
    "read_results",
    "trace_id_for",
]
