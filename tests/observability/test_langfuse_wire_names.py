"""The span builder's Langfuse attribute names and scope come from the installed SDK.

Langfuse ingests OTLP spans by these names; a copy spelled out in our code would keep sending
the old name after an SDK upgrade renamed one, and ingestion would drop it without a word.
"""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import langfuse
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import observability._span_builder as span_builder

_OURS_TO_SDK = {
    "IS_APP_ROOT": "IS_APP_ROOT",
    "TRACE_NAME": "TRACE_NAME",
    "TRACE_USER_ID": "TRACE_USER_ID",
    "TRACE_SESSION_ID": "TRACE_SESSION_ID",
    "TRACE_TAGS": "TRACE_TAGS",
    "OBS_TYPE": "OBSERVATION_TYPE",
    "OBS_INPUT": "OBSERVATION_INPUT",
    "OBS_OUTPUT": "OBSERVATION_OUTPUT",
    "OBS_LEVEL": "OBSERVATION_LEVEL",
    "OBS_STATUS_MESSAGE": "OBSERVATION_STATUS_MESSAGE",
    "OBS_METADATA": "OBSERVATION_METADATA",
    "OBS_MODEL": "OBSERVATION_MODEL",
    "OBS_MODEL_PARAMETERS": "OBSERVATION_MODEL_PARAMETERS",
    "OBS_USAGE": "OBSERVATION_USAGE_DETAILS",
    "OBS_COST": "OBSERVATION_COST_DETAILS",
    "OBS_COMPLETION_START": "OBSERVATION_COMPLETION_START_TIME",
    "OBS_PROMPT_NAME": "OBSERVATION_PROMPT_NAME",
    "OBS_PROMPT_VERSION": "OBSERVATION_PROMPT_VERSION",
    "VERSION": "VERSION",
    "ENVIRONMENT": "ENVIRONMENT",
    "RELEASE": "RELEASE",
}


def test_names_follow_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reloaded against an SDK whose names differ, the builder sends the SDK's names."""

    class Renamed:
        pass

    for sdk_name in _OURS_TO_SDK.values():
        setattr(Renamed, sdk_name, f"renamed.{sdk_name.lower()}")
    monkeypatch.setattr(langfuse, "LangfuseOtelSpanAttributes", Renamed)
    try:
        mod = importlib.reload(span_builder)
        for ours, sdk_name in _OURS_TO_SDK.items():
            assert getattr(mod, ours) == f"renamed.{sdk_name.lower()}", ours
    finally:
        monkeypatch.undo()
        importlib.reload(span_builder)
    for ours, sdk_name in _OURS_TO_SDK.items():
        assert getattr(span_builder, ours) == getattr(langfuse.LangfuseOtelSpanAttributes, sdk_name)


def test_scope_is_the_sdks_own() -> None:
    """A span the real SDK makes carries the instrumentation scope our spans claim."""
    exporter = InMemorySpanExporter()
    client: Any = langfuse.Langfuse(
        public_key=f"pk-test-{uuid.uuid4().hex[:8]}",
        secret_key="sk-test",
        base_url="http://127.0.0.1:9",
        span_exporter=exporter,
    )
    with client.start_as_current_observation(name="probe", as_type="generation", model="m"):
        pass
    client.flush()
    spans = exporter.get_finished_spans()
    assert spans, "the SDK exported no span"
    scope = spans[0].instrumentation_scope
    assert scope is not None
    assert scope.name == span_builder._LANGFUSE_TRACER_NAME
    assert span_builder.OBS_MODEL in (spans[0].attributes or {})
    client.shutdown()
