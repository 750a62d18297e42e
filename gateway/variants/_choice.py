"""Which variant serves a request: sticky per user or session, by weight otherwise."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class VariantGroup:
    """The live weights of one alias's variants (canonical model names, in config order).

    A keyed request goes through weighted rendezvous hashing: each user lands on a variant
    with probability weight / total, and raising one variant's weight only moves users onto
    it, never between the others, so a canary's users stay where they are as it grows.
    """

    alias: str
    models: tuple[str, ...]
    weights: list[float]
    baseline: str
    _keys: tuple[bytes, ...] = field(init=False)
    _cumulative: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self._keys = tuple(b"|" + m.encode() for m in self.models)
        self.set_weights(self.weights)

    def set_weights(self, weights: list[float]) -> None:
        if len(weights) != len(self.models):
            raise ValueError("one weight per variant")
        self.weights = [float(w) for w in weights]
        total = 0.0
        cumulative = []
        for w in self.weights:
            total += w
            cumulative.append(total)
        self._cumulative = cumulative

    @property
    def total(self) -> float:
        return self._cumulative[-1] if self._cumulative else 0.0

    def weight_of(self, model: str) -> float:
        return self.weights[self.models.index(model)]

    def choose(self, key: str | None, rand: random.Random | None = None) -> str | None:
        """The variant for this request; None when every weight is 0."""
        total = self.total
        if total <= 0:
            return None
        if key:
            k = key.encode()
            best, best_score = None, -math.inf
            for model, suffix, w in zip(self.models, self._keys, self.weights, strict=True):
                if w <= 0:
                    continue
                h = hashlib.blake2b(k + suffix, digest_size=8).digest()
                u = (int.from_bytes(h, "big") + 1) / (2**64 + 1)
                score = -w / math.log(u)
                if score > best_score:
                    best, best_score = model, score
            return best
        x = (rand or random).random() * total
        for model, edge in zip(self.models, self._cumulative, strict=True):
            if x < edge:
                return model
        return self.models[-1]
