"""What one request costs: from a token price, or from its replica's cost per served token.

Tokens come from the response's usage. A stream without usage (no ``include_usage``, or cut)
is charged the tokens it relayed plus the estimated prompt; a request with neither is charged
the estimate made at admission. Both are counted as estimated, never dropped. A request that
never ran upstream (refused, or failed before any output) costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gateway._context import RequestContext
from gateway._replicas import Replica
from gateway._spend_config import InfraCost, TokenPrice
from gateway.spend._meter import ReplicaMeter

Basis = Literal["usage", "relayed", "estimate"]


@dataclass(frozen=True, slots=True)
class Charge:
    usd: float
    input_usd: float
    output_usd: float
    prompt_tokens: int
    completion_tokens: int
    basis: Basis

    @property
    def estimated(self) -> bool:
        return self.basis != "usage"


def tokens_of(ctx: RequestContext, estimate: tuple[int, int]) -> tuple[int, int, Basis] | None:
    """(prompt, completion, basis) to charge, or None when nothing ran upstream."""
    usage = ctx.usage
    if usage:
        p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(p, int) or isinstance(c, int):
            return (p if isinstance(p, int) else 0), (c if isinstance(c, int) else 0), "usage"
    if ctx.relayed_tokens is not None and ctx.ttft_s is not None:
        return estimate[0], ctx.relayed_tokens, "relayed"
    if ctx.status >= 400 and ctx.status != 499 and ctx.ttft_s is None:
        return None
    if ctx.status == 0:
        return None
    return estimate[0], estimate[1], "estimate"


class Pricer:
    """The price or cost of each priced model; one meter per replica of infra-cost models."""

    def __init__(self, pricing: dict[str, TokenPrice | InfraCost], window_s: float) -> None:
        self.pricing = pricing
        self.window_s = window_s
        self.meters: dict[Replica, ReplicaMeter] = {}

    def track(self, replicas: Iterable[Replica]) -> None:
        """Meter every replica of an infra-cost model, served or not (idle counts too); drop
        the meters of replicas that are gone."""
        live = set()
        for r in replicas:
            p = self.pricing.get(r.model)
            if isinstance(p, InfraCost):
                live.add(r)
                self.meter(r, p)
        for r in [r for r in self.meters if r not in live]:
            del self.meters[r]

    def meter(self, replica: Replica, cost: InfraCost) -> ReplicaMeter:
        m = self.meters.get(replica)
        if m is None or m.cost is not cost:
            m = self.meters[replica] = ReplicaMeter(replica, cost, self.window_s)
        return m

    def estimate_usd(self, model: str, prompt: int, completion: int) -> float:
        """Before the request runs: for admission's money budgets."""
        p = self.pricing.get(model)
        if isinstance(p, TokenPrice):
            return (prompt * p.input_per_1m + completion * p.output_per_1m) / 1e6
        if p is None:
            return 0.0
        rates = [m.usd_per_token for r, m in self.meters.items()
                 if r.model == model and m.usd_per_token is not None]  # fmt: skip
        # No served tokens yet: nothing to estimate from (the first requests settle at the end).
        return max(rates) * (prompt * p.prefill_weight + completion) if rates else 0.0

    def charge(self, ctx: RequestContext, estimate: tuple[int, int]) -> Charge | None:
        p = self.pricing.get(ctx.model)
        if p is None:
            return None
        got = tokens_of(ctx, estimate)
        if got is None:
            return None
        prompt, completion, basis = got
        if isinstance(p, TokenPrice):
            i, o = prompt * p.input_per_1m / 1e6, completion * p.output_per_1m / 1e6
            return Charge(i + o, i, o, prompt, completion, basis)
        if ctx.replica is None:
            return None
        m = self.meter(ctx.replica, p)
        w_in = prompt * p.prefill_weight
        usd = m.charge(w_in + completion)
        share = w_in / (w_in + completion) if w_in + completion else 0.0
        return Charge(usd, usd * share, usd * (1 - share), prompt, completion, basis)
