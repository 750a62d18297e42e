"""Search filters in OpenAI's vector-store shape (comparison and compound filters), plus a
shorthand mapping `{"source": "...", "tags": ["a", "b"]}`. Backends translate this one model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ._errors import InvalidFilterError

Scalar = str | int | float | bool


class ComparisonFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str
    value: Scalar | list[str] | list[int]


class CompoundFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter]


CompoundFilter.model_rebuild()
Filter = ComparisonFilter | CompoundFilter

_RANGE_OPS = {"gt", "gte", "lt", "lte"}


def parse_filters(raw: Filter | Mapping[str, Any] | None) -> Filter | None:
    """Accept a model, an OpenAI-shaped dict, or the shorthand `{key: value | [values]}`."""
    if raw is None or isinstance(raw, ComparisonFilter | CompoundFilter):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidFilterError("filters must be an object")
    if not raw:
        return None
    try:
        if raw.get("type") in ("and", "or"):
            compound = CompoundFilter.model_validate(raw)
            walk(compound)
            return compound
        if "type" in raw and "key" in raw:
            return _check(ComparisonFilter.model_validate(raw))
        parts: list[ComparisonFilter | CompoundFilter] = []
        for key, value in raw.items():
            raw_f = {"type": "in" if isinstance(value, list) else "eq", "key": key, "value": value}
            parts.append(_check(ComparisonFilter.model_validate(raw_f)))
        return parts[0] if len(parts) == 1 else CompoundFilter(type="and", filters=parts)
    except ValidationError as exc:
        raise InvalidFilterError(f"invalid filter: {exc.errors()[0]['msg']}") from exc


def _check(f: ComparisonFilter) -> ComparisonFilter:
    if f.type in _RANGE_OPS and (
        isinstance(f.value, bool | str | list) or not isinstance(f.value, int | float)
    ):
        raise InvalidFilterError(f"filter '{f.type}' on {f.key!r} needs a number")
    if f.type in ("in", "nin") and not isinstance(f.value, list):
        raise InvalidFilterError(f"filter '{f.type}' on {f.key!r} needs a list")
    if f.type in ("eq", "ne") and isinstance(f.value, float):
        raise InvalidFilterError(f"filter '{f.type}' on {f.key!r}: use gte/lte for numbers")
    return f


def walk(f: Filter) -> list[ComparisonFilter]:
    """All comparisons in a filter tree, each checked (raises `InvalidFilterError`)."""
    if isinstance(f, ComparisonFilter):
        return [_check(f)]
    return [c for sub in f.filters for c in walk(sub)]
