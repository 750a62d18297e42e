"""Langfuse spans from trace records, exported with OpenTelemetry's OTLP exporter.

Runs where the tracer puts it: in the trace worker process (the default: the CPU it takes then
never holds the gateway's GIL) or in a thread of the gateway.

Spans are finished facts here, not live code to instrument, so they are made as
``ReadableSpan`` s (the OpenTelemetry SDK's exporter input) and handed in batches to
``OTLPSpanExporter`` aimed at Langfuse's OTLP endpoint, with the headers the Langfuse SDK sends.
The SDK's own path (a Tracer, the Langfuse span processor with its per-span context lookups,
the batch processor, and Langfuse's transforming exporter, which clones every span to look for
base64 media) cost 4x the CPU per trace: 265 µs against 64 µs, measured single-threaded. Media
is handled by the redactor instead (data URIs become a short placeholder). The Langfuse client
is still the one that records scores.

A trace is as few spans as says what happened, since every span and attribute costs CPU in the
encoder: a plain request is one generation (or embedding) observation that also carries the
trace attributes; a RAG request is a root span with a retrieval span and the generation under
it; a request refused before it reached a model is one span.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import random
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from langfuse import LangfuseOtelSpanAttributes as _LfAttr
from langfuse._client.constants import LANGFUSE_TRACER_NAME
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai

from observability._config import RedactionConfig, TracingConfig
from observability._extract import (
    body_output,
    generation_input,
    model_parameters,
    stream_output,
)
from observability._redact import Redactor
from observability._trace_record import TraceRecord

log = logging.getLogger("llmops.gateway.tracing")

# Wire names come from the installed SDK, so an upgrade that renames one cannot silently break
# ingestion. This module loads only where spans are built (the trace worker, or the shipper
# thread), never on the request path, so importing the SDK here costs a request nothing.
_LANGFUSE_TRACER_NAME = LANGFUSE_TRACER_NAME  # the scope Langfuse's ingestion recognises
IS_APP_ROOT = _LfAttr.IS_APP_ROOT
TRACE_NAME = _LfAttr.TRACE_NAME
TRACE_USER_ID = _LfAttr.TRACE_USER_ID
TRACE_SESSION_ID = _LfAttr.TRACE_SESSION_ID
TRACE_TAGS = _LfAttr.TRACE_TAGS
OBS_TYPE = _LfAttr.OBSERVATION_TYPE
OBS_INPUT = _LfAttr.OBSERVATION_INPUT
OBS_OUTPUT = _LfAttr.OBSERVATION_OUTPUT
OBS_LEVEL = _LfAttr.OBSERVATION_LEVEL
OBS_STATUS_MESSAGE = _LfAttr.OBSERVATION_STATUS_MESSAGE
OBS_METADATA = _LfAttr.OBSERVATION_METADATA
OBS_MODEL = _LfAttr.OBSERVATION_MODEL
OBS_MODEL_PARAMETERS = _LfAttr.OBSERVATION_MODEL_PARAMETERS
OBS_USAGE = _LfAttr.OBSERVATION_USAGE_DETAILS
OBS_COST = _LfAttr.OBSERVATION_COST_DETAILS
OBS_COMPLETION_START = _LfAttr.OBSERVATION_COMPLETION_START_TIME
OBS_PROMPT_NAME = _LfAttr.OBSERVATION_PROMPT_NAME
OBS_PROMPT_VERSION = _LfAttr.OBSERVATION_PROMPT_VERSION
VERSION = _LfAttr.VERSION
ENVIRONMENT = _LfAttr.ENVIRONMENT
RELEASE = _LfAttr.RELEASE

# OpenTelemetry's GenAI semantic conventions, beside Langfuse's names, so any OTel backend
# (Tempo, Jaeger, Phoenix) reads model, usage and parameters. Names from the installed
# semantic-conventions package, which defines them.
GEN_AI_OPERATION = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_REQUEST_MODEL = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_RESPONSE_MODEL = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_TEMPERATURE = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_MAX_TOKENS = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
_OPERATIONS = {
    "chat": _gen_ai.GenAiOperationNameValues.CHAT.value,
    "responses": _gen_ai.GenAiOperationNameValues.CHAT.value,
    "completions": _gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value,
    "embeddings": _gen_ai.GenAiOperationNameValues.EMBEDDINGS.value,
}
_MAX_TOKEN_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def _j(v: Any) -> str:
    return orjson.dumps(v, default=str).decode()


def _metadata(items: dict[str, Any]) -> str:
    """Observation metadata as one JSON object attribute, which Langfuse's OTel ingestion reads
    as the top-level metadata. One attribute instead of one per key (the SDK's flattened form)
    saves the per-attribute cost in the span, the exporter and the encoder."""
    return _j({k: v for k, v in items.items() if v is not None})


def _usage(usage: dict[str, Any] | None) -> dict[str, int] | None:
    if not usage:
        return None
    out: dict[str, int] = {}
    for src, dst in (
        ("prompt_tokens", "input"),
        ("completion_tokens", "output"),
        ("total_tokens", "total"),
    ):
        v = usage.get(src)
        if isinstance(v, int):
            out[dst] = v
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out["input_cached_tokens"] = details["cached_tokens"]
    return out or None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _gen_ai_attrs(attrs: dict[str, Any], rec: TraceRecord, served: Any) -> None:
    """The GenAI semantic-convention attributes of a generation or embedding span."""
    op = _OPERATIONS.get(rec.route)
    if op is not None:
        attrs[GEN_AI_OPERATION] = op
    attrs[GEN_AI_REQUEST_MODEL] = rec.requested_model or rec.model
    attrs[GEN_AI_RESPONSE_MODEL] = served if isinstance(served, str) and served else rec.model
    usage = rec.usage or {}
    for key, attr in (
        ("prompt_tokens", GEN_AI_INPUT_TOKENS),
        ("input_tokens", GEN_AI_INPUT_TOKENS),
        ("completion_tokens", GEN_AI_OUTPUT_TOKENS),
        ("output_tokens", GEN_AI_OUTPUT_TOKENS),
    ):
        if isinstance(usage.get(key), int):
            attrs[attr] = usage[key]
    data = rec.data or {}
    if _number(data.get("temperature")):
        attrs[GEN_AI_TEMPERATURE] = float(data["temperature"])
    for key in _MAX_TOKEN_KEYS:
        if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
            attrs[GEN_AI_MAX_TOKENS] = data[key]
            break


class SpanBuilder:
    """Builds and exports spans; owns the exporter and the Langfuse client for scores."""

    def __init__(
        self,
        config: TracingConfig,
        redaction: RedactionConfig,
        *,
        span_exporter: Any = None,
    ) -> None:
        self.config = config
        self.redactor = Redactor(redaction)
        self.exporter: Any = span_exporter
        self.langfuse: Any = None
        self._batch: list[Any] = []
        self._resource: Any = None
        self._scope: Any = None
        self._public_key: str | None = None

    def start(self, pk: str, sk: str, url: str) -> None:
        """Create the exporter and the Langfuse client (no network until the first export)."""
        from langfuse import Langfuse
        from langfuse import __version__ as lf_version
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        lf_cfg = self.config.langfuse
        res = {"service.name": "llmops-gateway"}
        if lf_cfg.environment:
            res[ENVIRONMENT] = lf_cfg.environment
        if lf_cfg.release:
            res[RELEASE] = lf_cfg.release
        self._resource = Resource.create(res)
        # The scope the Langfuse SDK's own spans carry: Langfuse reads them as SDK spans.
        self._scope = InstrumentationScope(
            _LANGFUSE_TRACER_NAME, lf_version, None, {"public_key": pk}
        )
        if self.config.exporter == "otlp":
            self._start_otlp()
            return
        if self.exporter is None:
            from opentelemetry.exporter.otlp.proto.http import Compression
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            auth = base64.b64encode(f"{pk}:{sk}".encode()).decode("ascii")
            self.exporter = OTLPSpanExporter(
                endpoint=f"{url}/api/public/otel/v1/traces",
                headers={
                    "Authorization": f"Basic {auth}",
                    "x-langfuse-sdk-name": "python",
                    "x-langfuse-sdk-version": lf_version,
                    "x-langfuse-public-key": pk,
                    "x-langfuse-ingestion-version": "4",
                },
                timeout=lf_cfg.timeout_s,
                compression=Compression.Gzip,
            )
        rate = self.config.sample_rate
        # Scores only: same ratio rule as our own decision, so the SDK also drops scores of
        # unsampled traces. A provider of our own keeps the global one untouched.
        self.langfuse = Langfuse(
            public_key=pk,
            secret_key=sk,
            base_url=url,
            timeout=lf_cfg.timeout_s,
            environment=lf_cfg.environment,
            release=lf_cfg.release,
            tracer_provider=TracerProvider(sampler=TraceIdRatioBased(rate) if rate < 1 else None),
        )
        self._public_key = pk
        log.info("Langfuse tracing to %s at sample rate %s", url, rate)

    def _start_otlp(self) -> None:
        """Plain OTLP: the same spans, no Langfuse client (scores become spans)."""
        otlp = self.config.otlp
        if self.exporter is None:
            from opentelemetry.exporter.otlp.proto.http import Compression
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.exporter = OTLPSpanExporter(
                endpoint=otlp.endpoint,
                headers=dict(otlp.headers),
                timeout=otlp.timeout_s,
                compression=Compression.Gzip,
            )
        log.info("OTLP tracing to %s at sample rate %s", otlp.endpoint, self.config.sample_rate)

    def export(self) -> bool:
        """Send the spans built so far (from this thread; the exporter retries until its
        timeout). False when they could not be delivered."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        batch, self._batch = self._batch, []
        if not batch:
            return True
        return bool(self.exporter.export(batch) == SpanExportResult.SUCCESS)

    def flush(self) -> None:
        """Send built spans and queued scores (blocks until sent or timed out)."""
        self.export()
        if self.langfuse is not None:
            self.langfuse.flush()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Export what is left and shut the exporter and the SDK down, bounded by ``timeout``
        seconds (against a dead endpoint both wait for retries)."""

        def close() -> None:
            with contextlib.suppress(Exception):
                self.export()
            self.exporter.shutdown()
            if self.langfuse is not None:
                self.langfuse.shutdown()

        t = threading.Thread(target=close, name="langfuse-shutdown", daemon=True)
        t.start()
        t.join(timeout)
        self._forget_singleton()

    def _forget_singleton(self) -> None:
        # langfuse keeps a per-public-key singleton for the process; drop ours so a new app with
        # the same key (tests, reloads) gets a fresh exporter instead of a shut-down one.
        with contextlib.suppress(Exception):
            from langfuse._client.resource_manager import LangfuseResourceManager

            with LangfuseResourceManager._lock:
                inst = LangfuseResourceManager._instances.get(self._public_key or "")
                if inst is not None and getattr(inst, "_shutdown", False):
                    del LangfuseResourceManager._instances[self._public_key or ""]

    def score(self, **score: Any) -> None:
        """Record a Langfuse score (queued; the SDK's score thread sends it). A failure is
        logged, never raised: it must not stop the traces queued behind it."""
        try:
            if self.langfuse is None:
                self._score_span(**score)
            else:
                self.langfuse.create_score(**score)
        except Exception:
            log.exception("recording a score failed")

    def _score_span(
        self,
        *,
        trace_id: str,
        name: str,
        value: float | str,
        score_id: str,
        comment: str | None = None,
        data_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A score as a zero-length span in its trace, for OTLP backends without a score API."""
        import time

        now = time.time_ns()
        attrs: dict[str, Any] = {
            "llmops.score.id": score_id,
            "llmops.score.name": name,
            "llmops.score.value": value,
        }
        for key, v in (("comment", comment), ("data_type", data_type)):
            if v is not None:
                attrs[f"llmops.score.{key}"] = v
        if metadata:
            attrs["llmops.score.metadata"] = _j(metadata)
        self._span(f"score:{name}", int(trace_id, 16), None, now, now, attrs)
        self.export()

    def build_all(self, records: Iterable[TraceRecord | dict[str, Any]]) -> tuple[int, int]:
        """Build each record (or its JSON form, as the worker reads it); one that fails is
        logged and counted, never stops the rest. Returns (built, failed)."""
        built = failed = 0
        for rec in records:
            try:
                self.build(rec if isinstance(rec, TraceRecord) else TraceRecord.from_json(rec))
                built += 1
            except Exception:
                failed += 1
                log.exception("building a trace failed")
        return built, failed

    def build(self, rec: TraceRecord) -> None:
        """Turn one finished request into its spans (sent by the next :meth:`export`)."""
        cfg = self.config
        prompt = rec.prompt or {}
        pname: str | None = prompt.get("name")
        output: Any = None
        finish: str | None = None
        if cfg.capture_output and rec.output is not None:
            raw = rec.output.encode()
            if rec.streamed:
                output, finish = stream_output(raw, rec.route)
            else:
                output, finish = body_output(raw, rec.route)
            output = self.redactor.value(output) if output is not None else None
        out_attr = (
            (output if isinstance(output, str) else _j(output)) if output is not None else None
        )
        level: str | None = None  # Langfuse's DEFAULT: left out, one attribute less per span
        if rec.status >= 500 or (400 <= rec.status < 499):
            level = "ERROR"
        elif rec.status == 499:
            level = "WARNING"

        trace_attrs = self._trace_attrs(rec, pname, prompt.get("version"))
        name = f"{rec.route}:{rec.model}"
        tid = int(rec.trace_id, 16)
        if rec.generated and rec.citations is None:  # the common case: one span is the trace
            attrs = self._generation_attrs(rec, level, out_attr, finish)
            attrs.update(trace_attrs)
            self._span(name, tid, None, rec.start_ns, rec.end_ns, attrs)
            return

        attrs = trace_attrs
        attrs[OBS_TYPE] = "span"
        if level:
            attrs[OBS_LEVEL] = level
        attrs[OBS_METADATA] = _metadata({"request_id": rec.request_id, "status": rec.status})
        if rec.query and cfg.capture_input:
            attrs[OBS_INPUT] = self.redactor.text(rec.query)
        if out_attr is not None:
            attrs[OBS_OUTPUT] = out_attr
        if rec.error:
            attrs[OBS_STATUS_MESSAGE] = rec.error
        root = self._span(f"llmops.{rec.route}", tid, None, rec.start_ns, rec.end_ns, attrs)
        gen_start_ns = rec.gen_start_ns if rec.gen_start_ns is not None else rec.start_ns
        if rec.citations is not None:
            self._retrieval_span(rec, tid, root, gen_start_ns)
        if rec.generated:
            attrs = self._generation_attrs(rec, level, out_attr, finish)
            self._span(name, tid, root, gen_start_ns, rec.end_ns, attrs)

    def _span(
        self,
        name: str,
        trace_id: int,
        parent: Any,
        start_ns: int,
        end_ns: int,
        attrs: dict[str, Any],
    ) -> Any:
        """A finished span, queued for the next export; returns its context (for children)."""
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, TraceFlags

        ctx = SpanContext(trace_id, random.getrandbits(64), False, TraceFlags(TraceFlags.SAMPLED))
        if parent is None:
            attrs[IS_APP_ROOT] = True  # what the Langfuse SDK marks its top-level spans with
        self._batch.append(
            ReadableSpan(
                name=name,
                context=ctx,
                parent=parent,
                resource=self._resource,
                attributes=attrs,
                instrumentation_scope=self._scope,
                start_time=start_ns,
                end_time=end_ns,
            )
        )
        return ctx

    def _trace_attrs(self, rec: TraceRecord, pname: str | None, pversion: Any) -> dict[str, Any]:
        """What Langfuse files under the trace (set on its top-level span). No trace metadata,
        and a tag only for a model variant (``variant:NAME``, so Langfuse's trace list filters
        an A/B test's arms): the name, the generation's model and its metadata say the rest,
        and every attribute costs CPU three times over (span, Langfuse's transform, encoder)."""
        attrs: dict[str, Any] = {TRACE_NAME: pname or rec.route}
        user = rec.user or rec.principal
        if user:
            attrs[TRACE_USER_ID] = user
        if rec.session:
            attrs[TRACE_SESSION_ID] = rec.session
        if pversion:
            attrs[VERSION] = str(pversion)
        if rec.variant:
            attrs[TRACE_TAGS] = [f"variant:{rec.variant}"]
        return attrs

    def _generation_attrs(
        self, rec: TraceRecord, level: str | None, out_attr: str | None, finish: str | None
    ) -> dict[str, Any]:
        data = rec.data
        served = data.get("model") if data else None
        prompt = rec.prompt or {}
        attrs: dict[str, Any] = {
            OBS_TYPE: "embedding" if rec.route == "embeddings" else "generation",
            OBS_MODEL: rec.model,
            OBS_METADATA: _metadata(
                {
                    "request_id": rec.request_id,
                    "replica": rec.replica,
                    "status": rec.status,
                    "attempts": rec.attempts,
                    "finish_reason": finish,
                    "api_key": rec.principal,
                    # only when an alias or the engine's own name differs from the model
                    "requested_model": (
                        rec.requested_model if rec.requested_model != rec.model else None
                    ),
                    "served_model": served if served != rec.model else None,
                    "prompt_commit": prompt.get("commit"),
                    "variant": rec.variant,
                },
            ),
        }
        if level:
            attrs[OBS_LEVEL] = level
        _gen_ai_attrs(attrs, rec, served)
        params = model_parameters(data)
        if params:
            attrs[OBS_MODEL_PARAMETERS] = _j(params)
        if self.config.capture_input:
            inp = generation_input(data, rec.route)
            if inp is not None:
                inp = self.redactor.value(inp)
                attrs[OBS_INPUT] = inp if isinstance(inp, str) else _j(inp)
        if out_attr is not None:
            attrs[OBS_OUTPUT] = out_attr
        usage = _usage(rec.usage)
        if usage:
            attrs[OBS_USAGE] = _j(usage)
        if rec.cost:
            attrs[OBS_COST] = _j(rec.cost)
        if rec.ttft_s is not None:
            first = datetime.fromtimestamp((rec.start_ns + int(rec.ttft_s * 1e9)) / 1e9, UTC)
            attrs[OBS_COMPLETION_START] = _j(first.isoformat())
        if rec.error:
            attrs[OBS_STATUS_MESSAGE] = rec.error
        pname, pversion = prompt.get("name"), prompt.get("version")
        if pname:
            attrs[VERSION] = str(pversion)
            linked = prompt.get("langfuse_version")
            if isinstance(linked, int) and not isinstance(linked, bool):
                # Synced by `llmops prompts sync-langfuse`: Langfuse links the generation.
                attrs[OBS_PROMPT_NAME] = pname
                attrs[OBS_PROMPT_VERSION] = linked
            elif isinstance(pversion, int) or (isinstance(pversion, str) and pversion.isdigit()):
                # Links to a Langfuse-managed prompt of that name (integer versions only).
                attrs[OBS_PROMPT_NAME] = pname
                attrs[OBS_PROMPT_VERSION] = int(pversion)
        return attrs

    def _retrieval_span(self, rec: TraceRecord, tid: int, parent: Any, end_ns: int) -> None:
        info = rec.retrieval or {}
        query = info.get("query") or rec.query
        hits = [
            {"id": c.get("id"), "source": c.get("source"), "score": c.get("score")}
            for c in rec.citations or ()
            if isinstance(c, dict)
        ]
        attrs: dict[str, Any] = {
            OBS_TYPE: "retriever",
            OBS_METADATA: _metadata(
                {
                    "collection": info.get("collection"),
                    "top_k": info.get("top_k"),
                    "hits": len(hits),
                    "hit_ids": [x["id"] for x in hits],
                    "scores": [x["score"] for x in hits],
                },
            ),
            OBS_OUTPUT: _j(hits),
        }
        if self.config.capture_input and isinstance(query, str):
            attrs[OBS_INPUT] = _j(
                {"query": self.redactor.text(query), "collection": info.get("collection")}
            )
        self._span("retrieval", tid, parent, rec.start_ns, end_ns, attrs)
