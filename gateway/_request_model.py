"""The few request fields routing needs, validated with pydantic; the rest passes untouched.

Bodies are parsed once with orjson; only these fields are checked, so vLLM's extra sampling
parameters (``top_k``, ``min_p``, ``guided_json``...) reach the engine exactly as sent.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from gateway._errors import GatewayError

# The tags pydantic puts in the location of a union member's error: "str", "list[any]"...
_UNION_TAG = re.compile(r"(?:str|int|float|bool|list|dict)(?:\[.*\])?\Z")


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


class ResponsesRouting(_Routing):
    """The Responses API: ``input`` is a string or a list of input items; a
    ``previous_response_id`` pins the request to the replica holding that response."""

    input: str | list[Any]
    previous_response_id: str | None = None


ROUTE_MODELS: dict[str, type[_Routing]] = {
    "chat": ChatRouting,
    "completions": CompletionRouting,
    "embeddings": EmbeddingRouting,
    "responses": ResponsesRouting,
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
        errors = e.errors(include_url=False)
        param = _param(errors[0]["loc"])
        # A union (``str | list``) fails once per member: name them all, for one param.
        msg = " or ".join(dict.fromkeys(x["msg"] for x in errors if _param(x["loc"]) == param))
        raise GatewayError(
            400, f"Invalid request: '{param}': {msg}", param=param, code="invalid_value"
        ) from e


def _param(loc: tuple[int | str, ...]) -> str | None:
    """The field's path without pydantic's union member tags (``input.str``: ``input``)."""
    return ".".join(str(p) for p in loc if not _UNION_TAG.match(str(p))) or None
