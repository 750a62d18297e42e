"""Reading the gateway's variant records: one JSON object per line, requests and feedback.

The gateway writes them (``variants.events_file``, by default under ``$LLMOPS_HOME/gateway``);
several gateways' files can be read together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass(slots=True)
class VariantSample:
    """What one variant of an alias did over the report's window."""

    variant: str
    errors: list[float] = field(default_factory=list)  # 1.0 per 5xx, 0.0 otherwise
    latency_s: list[float] = field(default_factory=list)  # successful requests
    ttft_s: list[float] = field(default_factory=list)  # successful streams
    completion_tokens: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)  # priced models' answered requests
    scores: dict[str, list[float]] = field(default_factory=dict)  # feedback name -> values
    quality: dict[str, list[float]] = field(default_factory=dict)  # online judge metric -> values

    @property
    def requests(self) -> int:
        return len(self.errors)


def read_records(paths: Iterable[Path], since: float | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in paths:
        try:
            f = path.open("rb")
        except FileNotFoundError:
            continue
        with f:
            for line in f:
                try:
                    e = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(e, dict) and (since is None or float(e.get("ts", 0)) >= since):
                    out.append(e)
    return out


def request_ids(records: list[dict[str, Any]], alias: str) -> list[str]:
    return [
        str(e["request_id"])
        for e in records
        if e.get("kind") == "request" and e.get("alias") == alias and e.get("request_id")
    ]


def samples_by_variant(
    records: list[dict[str, Any]],
    alias: str,
    online: dict[str, dict[str, float]] | None = None,
) -> dict[str, VariantSample]:
    """Requests of ``alias`` by variant (forced ones, which are tests, left out), with the
    feedback given on them and the online judge scores (``online``: request id -> metric ->
    value) joined by request id."""
    out: dict[str, VariantSample] = {}
    by_request: dict[str, VariantSample] = {}
    for e in records:
        if e.get("kind") != "request" or e.get("alias") != alias or e.get("forced"):
            continue
        status = int(e.get("status") or 0)
        if status in (0, 499):
            continue  # never answered, or the client left: says nothing of the variant
        s = out.get(e["variant"])
        if s is None:
            s = out[e["variant"]] = VariantSample(e["variant"])
        s.errors.append(1.0 if status >= 500 else 0.0)
        if 200 <= status < 400:
            s.latency_s.append(float(e.get("latency_s") or 0.0))
            if e.get("ttft_s") is not None:
                s.ttft_s.append(float(e["ttft_s"]))
            if isinstance(e.get("completion_tokens"), int):
                s.completion_tokens.append(float(e["completion_tokens"]))
            if isinstance(e.get("cost_usd"), int | float):
                s.cost_usd.append(float(e["cost_usd"]))
        if e.get("request_id"):
            by_request[str(e["request_id"])] = s
            for metric, value in (online or {}).get(str(e["request_id"]), {}).items():
                s.quality.setdefault(metric, []).append(value)
    for e in records:
        if e.get("kind") != "feedback" or not isinstance(e.get("score"), int | float):
            continue
        s = by_request.get(str(e.get("request_id")))
        if s is not None:
            s.scores.setdefault(str(e.get("name") or "feedback"), []).append(float(e["score"]))
    return out
