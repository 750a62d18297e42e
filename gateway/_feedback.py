"""``POST /v1/feedback``: a user's verdict on a response, recorded as a Langfuse score and,
where model variants are configured, in their local record for ``llmops ab report``.

Body: ``{"request_id" | "trace_id": ..., "score": 1, "comment": "...", "name": "..."}``. A
request id maps to its trace id without a lookup (the id is derived from it), so feedback works
on any gateway replica. Numbers are NUMERIC scores (range from the config), booleans BOOLEAN,
strings CATEGORICAL. Errors use OpenAI's shape.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.responses import Response

from gateway._errors import GatewayError
from observability import FeedbackConfig, Tracer, trace_id_for

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(None, min_length=1, max_length=256)
    trace_id: str | None = None
    score: float | bool | str
    name: str | None = None
    comment: str | None = Field(None, max_length=4000)
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_id(self) -> FeedbackRequest:
        if (self.request_id is None) == (self.trace_id is None):
            raise ValueError("give exactly one of request_id or trace_id")
        return self


def _invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_feedback")


def feedback_route(gw: Any, tracer: Tracer | None, config: FeedbackConfig) -> Any:
    """The handler, bound to one app's tracer and key store."""

    async def feedback(request: Request) -> Response:
        principal = gw.state.keys.authenticate(request.headers.get("authorization"))
        try:
            raw = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _invalid("The request body is not valid JSON.") from None
        if not isinstance(raw, dict):
            raise _invalid("The request body must be a JSON object.")
        if "value" in raw and "score" not in raw:
            raw["score"] = raw.pop("value")
        try:
            fb = FeedbackRequest.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            param = ".".join(str(p) for p in err["loc"]) or None
            raise _invalid(f"Invalid feedback: {err['msg']}", param) from None
        if fb.trace_id is not None:
            trace_id = fb.trace_id.lower()
            if not _TRACE_ID.match(trace_id):
                raise _invalid("trace_id must be 32 hexadecimal characters.", "trace_id")
        else:
            assert fb.request_id is not None
            trace_id = trace_id_for(fb.request_id)
        name = fb.name or config.score_name
        if not _NAME.match(name):
            raise _invalid("name must be 1-64 characters of letters, digits, _ . : -", "name")
        value: float | str
        if isinstance(fb.score, bool):
            value, dtype = float(fb.score), "BOOLEAN"
        elif isinstance(fb.score, str):
            if not fb.score or len(fb.score) > 64:
                raise _invalid("A categorical score must be 1-64 characters.", "score")
            value, dtype = fb.score, "CATEGORICAL"
        else:
            value, dtype = float(fb.score), "NUMERIC"
            if not math.isfinite(value) or not config.min_score <= value <= config.max_score:
                raise _invalid(
                    f"score must be between {config.min_score} and {config.max_score}.", "score"
                )
        sinks = getattr(gw, "feedback_sinks", ())
        tracing = tracer is not None and tracer.enabled
        if not tracing and not sinks:
            raise GatewayError(
                503,
                "Feedback needs tracing, which is not configured on this gateway.",
                code="tracing_disabled",
            )
        meta = dict(fb.metadata or {})
        if fb.request_id is not None:
            meta.setdefault("request_id", fb.request_id)
        if principal is not None:
            meta.setdefault("api_key", principal.name)
        if tracing:
            assert tracer is not None
            score_id = tracer.score(
                trace_id=trace_id,
                name=name,
                value=value,
                comment=fb.comment,
                data_type=dtype,
                metadata=meta or None,
            )
        else:
            score_id = uuid.uuid4().hex
        for sink in sinks:
            sink(
                {
                    "ts": round(time.time(), 3),
                    "kind": "feedback",
                    "id": score_id,
                    "request_id": fb.request_id,
                    "trace_id": trace_id,
                    "name": name,
                    "score": value,
                }
            )
        body = {
            "object": "feedback",
            "id": score_id,
            "trace_id": trace_id,
            "name": name,
            "score": fb.score,
            "data_type": dtype,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return feedback
