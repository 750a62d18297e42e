"""Metrics that need no judge: string checks, JSON, length, retrieval ranks, latency and tokens.

All are pure functions of (metric spec, case, generation) returning a float or None (no score:
the generation failed or lacks the field). Binary checks score 1.0 / 0.0, so their mean is a pass
rate. Retrieval metrics take plain id lists so they can be tested and reused on their own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals._dataset import Case
from evals._results import Generation
from evals._suite import MetricSpec

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


# --- retrieval: pure functions over id lists ---------------------------------------------------


def recall_at_k(hits: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of the gold ids found in the first ``k`` hits."""
    if not gold:
        raise ValueError("recall needs at least one gold id")
    top = set(hits[:k])
    return sum(1 for g in set(gold) if g in top) / len(set(gold))


def mrr(hits: Sequence[str], gold: Sequence[str]) -> float:
    """Reciprocal rank of the first gold id among the hits (0 when none is found)."""
    gold_set = set(gold)
    for i, h in enumerate(hits, 1):
        if h in gold_set:
            return 1.0 / i
    return 0.0


def ndcg_at_k(hits: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Binary-relevance nDCG@k; a repeated hit counts once."""
    gold_set = set(gold)
    if not gold_set:
        raise ValueError("nDCG needs at least one gold id")
    seen: set[str] = set()
    dcg = 0.0
    for i, h in enumerate(hits[:k]):
        if h in gold_set and h not in seen:
            dcg += 1.0 / math.log2(i + 2)
        seen.add(h)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(gold_set), k)))
    return dcg / ideal


# --- text checks -------------------------------------------------------------------------------


def parse_json_output(text: str) -> Any:
    """Parse model output as JSON, tolerating a surrounding Markdown code fence."""
    m = _FENCE.match(text)
    return json.loads(m.group(1) if m else text)


def _norm(s: str, ignore_case: bool) -> str:
    s = " ".join(s.split())
    return s.lower() if ignore_case else s


def load_schema(spec: MetricSpec, base_dir: Path) -> dict[str, Any] | None:
    if spec.json_schema is not None:
        return spec.json_schema
    if spec.schema_file:
        p = Path(spec.schema_file)
        data = json.loads((p if p.is_absolute() else base_dir / p).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    return None


def score_plain(
    spec: MetricSpec, case: Case, gen: Generation, schema: dict[str, Any] | None = None
) -> float | None:
    """Score one generation with a metric that needs no model; None = no score."""
    if gen.error is not None:
        return None
    t, text = spec.type, gen.text
    if t == "exact_match":
        out = _norm(text, spec.ignore_case)
        return float(any(out == _norm(r, spec.ignore_case) for r in case.references))
    if t == "contains":
        needles = spec.value if spec.value is not None else case.references
        if isinstance(needles, str):
            needles = [needles]
        hay = _norm(text, spec.ignore_case)
        found = [_norm(n, spec.ignore_case) in hay for n in needles]
        return float(all(found) if spec.match == "all" else any(found))
    if t == "regex":
        assert spec.pattern is not None
        flags = re.I if spec.ignore_case else 0
        return float(re.search(spec.pattern, text, flags) is not None)
    if t in ("is_json", "json_schema"):
        try:
            obj = parse_json_output(text)
        except ValueError:
            return 0.0
        if t == "is_json":
            return 1.0
        import jsonschema

        try:
            jsonschema.validate(obj, schema or {})
        except jsonschema.ValidationError:
            return 0.0
        return 1.0
    if t == "length":
        n = len(text.split()) if spec.unit == "words" else len(text)
        ok = (spec.min is None or n >= spec.min) and (spec.max is None or n <= spec.max)
        return float(ok)
    if t == "recall_at_k":
        return recall_at_k(gen.citations, case.gold_ids, spec.k)
    if t == "mrr":
        return mrr(gen.citations, case.gold_ids)
    if t == "ndcg_at_k":
        return ndcg_at_k(gen.citations, case.gold_ids, spec.k)
    if t == "latency_ms":
        return gen.latency_ms
    if t == "completion_tokens":
        return float(gen.completion_tokens) if gen.completion_tokens is not None else None
    if t == "total_tokens":
        if gen.completion_tokens is None or gen.prompt_tokens is None:
            return None
        return float(gen.completion_tokens + gen.prompt_tokens)
    raise ValueError(f"metric type {t!r} is not a plain metric")
