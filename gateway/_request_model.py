"""The few request fields routing needs, validated with pydantic; the rest passes untouched.

Bodies are parsed once with orjson; only these fields are checked, so vLLM's extra sampling
parameters (``top_k``, ``min_p``, ``guided_json``...) reach the engine exactly as sent.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from gateway._errors import GatewayError


class _Routing(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    stream: StrictBool | None = None
    user: str | None = None


class ChatRouting(_Routing):
    messages: list[dict[str, Any]]


class CompletionRouting(_Routing):
    prompt: str | list[Any]


class EmbeddingRouting(_Routing):
    input: str | list[Any]


ROUTE_MODELS: dict[str, type[_Routing]] = {
    "chat": ChatRouting,
    "completions": CompletionRouting,
    "embeddings": EmbeddingRouting,
}


def parse_body(body: bytes) -> dict[str, Any]:
    if not body:
        raise GatewayError(400, "The request body is empty; expected a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise GatewayError(
            400, f"The request body is not valid JSON: {e}", code="invalid_json"
        ) from e
    if not isinstance(data, dict):
        raise GatewayError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def routing_fields(route: str, data: dict[str, Any]) -> _Routing:
    try:
        return ROUTE_MODELS[route].model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise GatewayError(
            400, f"Invalid request: '{param}': {err['msg']}", param=param, code="invalid_value"
        ) from e
