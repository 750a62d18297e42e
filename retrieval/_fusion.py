"""Fusion done here rather than in the engine: the convex combination of min-max normalised
scores, which neither Qdrant nor Qdrant Edge offers as a query. Both sides are fetched with the
same filter and prefetch depth as the engine's own fusions."""

from __future__ import annotations

from collections.abc import Sequence

from ._store import StoredHit


def _normalised(hits: Sequence[StoredHit]) -> dict[str, float]:
    if not hits:
        return {}
    scores = [h.score for h in hits]
    low, high = min(scores), max(scores)
    span = high - low
    # One hit, or all equal: each is as good as the best of its side.
    return {h.id: (h.score - low) / span if span > 0 else 1.0 for h in hits}


def convex(
    dense: Sequence[StoredHit], sparse: Sequence[StoredHit], alpha: float, limit: int
) -> list[StoredHit]:
    """``alpha`` x dense + (1 - alpha) x BM25, each scaled to [0, 1] over its own candidates; a
    candidate missing from one side scores 0 there. Ties keep the dense order first."""
    d, s = _normalised(dense), _normalised(sparse)
    payloads = {h.id: h.payload for h in sparse}
    payloads.update({h.id: h.payload for h in dense})
    order = [h.id for h in dense] + [h.id for h in sparse if h.id not in d]
    combined = [
        StoredHit(i, alpha * d.get(i, 0.0) + (1.0 - alpha) * s.get(i, 0.0), payloads[i])
        for i in order
    ]
    combined.sort(key=lambda h: h.score, reverse=True)  # stable: ties keep the order above
    return combined[:limit]
