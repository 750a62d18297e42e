"""Tracing, feedback scores, drift sampling and redaction for live traffic.

A library of its own: it knows nothing of the gateway, which wires it in through its hooks
(``gateway/_observability.py``) and hands finished requests to :class:`Tracer` with a
``to_record`` function of its own. ``monitor`` reads what this package writes (the drift store,
the drift gauges) through this public face. Importing it needs neither numpy nor Langfuse: those
load when tracing starts or a vector is stored.
"""

from observability._config import (
    DriftSamplingConfig,
    FeedbackConfig,
    LangfuseConfig,
    ObservabilityConfig,
    RedactionConfig,
    TracingConfig,
)
from observability._drift_metrics import drift_families, read_results
from observability._drift_sampler import DriftSampler
from observability._drift_store import DriftStore, Sample
from observability._embed import Embed, load_embedder, model_label
from observability._extract import query_text
from observability._redact import Redactor
from observability._trace_record import TraceRecord
from observability._tracing import TraceHandle, Tracer, is_sampled, trace_id_for

__all__ = [
    "DriftSampler",
    "DriftSamplingConfig",
    "DriftStore",
    "Embed",
    "FeedbackConfig",
    "LangfuseConfig",
    "ObservabilityConfig",
    "RedactionConfig",
    "Redactor",
    "Sample",
    "TraceHandle",
    "TraceRecord",
    "Tracer",
    "TracingConfig",
    "drift_families",
    "is_sampled",
    "load_embedder",
    "model_label",
    "query_text",
    "read_results",
    "trace_id_for",
]
