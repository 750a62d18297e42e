"""Model variants behind one alias: choosing, recording, guarding, persisting.

The proxy asks :meth:`VariantRouter.choose` once it knows the alias; an observer records how
the request went; a background task syncs with the shared store and runs the guard, which
sets a breaching variant's weight to 0 on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway._config import GatewayConfig, ModelConfig
from gateway._context import RequestContext
from gateway._errors import GatewayError
from gateway._metrics import ChildCache
from gateway._variants_config import GuardConfig
from gateway.variants._choice import VariantGroup
from gateway.variants._events import EventLog
from gateway.variants._guard import GuardVerdict, judge
from gateway.variants._store import AliasState, StateStore
from gateway.variants._window import SlidingWindow, total

log = logging.getLogger("llmops.gateway.variants")

OVERRIDE_HEADER = "x-llmops-variant"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class VariantError(ValueError):
    """A weight change that cannot apply; nothing was changed."""


@dataclass(eq=False)
class _Alias:
    config: ModelConfig
    group: VariantGroup
    guard: GuardConfig | None
    window: SlidingWindow
    state: AliasState
    next_check: float = 0.0


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        labels = ["alias", "variant"]
        self.requests = Counter("llmops_variant_requests", "Requests by alias, variant, status",
                                [*labels, "status"], registry=r)  # fmt: skip
        self.latency = Histogram("llmops_variant_request_duration_seconds",
                                 "Time from request to last byte, by variant", labels,
                                 buckets=_BUCKETS, registry=r)  # fmt: skip
        self.ttft = Histogram("llmops_variant_time_to_first_token_seconds",
                              "Time to the first streamed chunk, by variant", labels,
                              buckets=_BUCKETS, registry=r)  # fmt: skip
        self.weight = Gauge("llmops_variant_weight", "Live weight of a variant", labels,
                            registry=r)  # fmt: skip
        self.breaches = Counter("llmops_variant_guard_breaches",
                                "Guard breaches that rolled a variant back",
                                [*labels, "reason"], registry=r)  # fmt: skip
        self.rolled_back = Gauge("llmops_variant_rolled_back",
                                 "1 while the guard holds a variant at weight 0", labels,
                                 registry=r)  # fmt: skip
        self.child = ChildCache()
        # (alias, variant, status) -> the children every request of it moves
        self._per_request: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def per_request(self, alias: str, variant: str, status: int) -> tuple[Any, Any, Any]:
        key = (alias, variant, status)
        got = self._per_request.get(key)
        if got is None:
            got = self._per_request[key] = (
                self.requests.labels(alias, variant, str(status)),
                self.latency.labels(alias, variant),
                self.ttft.labels(alias, variant),
            )
        return got


def _weights(m: ModelConfig, canonical: dict[str, str]) -> dict[str, float]:
    return {canonical.get(v.model, v.model): v.weight for v in m.variants or ()}


class VariantRouter:
    def __init__(
        self,
        config: GatewayConfig,
        canonical: dict[str, str],
        store: StateStore,
        registry: CollectorRegistry,
        events: EventLog | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.metrics = _Metrics(registry)
        self.aliases: dict[str, _Alias] = {}
        self.write_back: Any = None  # (alias, weights) -> None, set by the plug-in
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._sync_interval = config.variants.sync_interval_s
        self._build(config, canonical)

    # --- configuration -------------------------------------------------------------------
    def _build(self, config: GatewayConfig, canonical: dict[str, str]) -> None:
        aliases: dict[str, _Alias] = {}
        for m in config.models:
            if m.variants is None:
                continue
            weights = _weights(m, canonical)
            models = tuple(weights)
            baseline = canonical.get(m.baseline_variant or "", models[0])
            old = self.aliases.get(m.name)
            if old is not None and old.group.models == models and old.config == m:
                aliases[m.name] = old
                continue
            group = VariantGroup(m.name, models, list(weights.values()), baseline)
            window = SlidingWindow(m.guard.window_s if m.guard else 60.0)
            state = AliasState(weights=dict(weights), config_weights=dict(weights))
            aliases[m.name] = _Alias(m, group, m.guard, window, state)
        self.aliases = aliases
        for a in aliases.values():
            self._export(a)

    def reconfigure(self, config: GatewayConfig, canonical: dict[str, str]) -> None:
        """After an admin reload: new aliases start from the config; changed ones too."""
        before = {n: a for n, a in self.aliases.items()}
        self._build(config, canonical)
        for name, a in self.aliases.items():
            if before.get(name) is not a:
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().create_task(self._load_one(name))

    def groups(self) -> dict[str, VariantGroup]:
        return {n: a.group for n, a in self.aliases.items()}

    # --- the request path ----------------------------------------------------------------
    def choose(self, ctx: RequestContext, alias: str) -> str:
        """The canonical model that serves this request; sets the variant on ``ctx``."""
        a = self.aliases[alias]
        forced = ctx.headers.get(OVERRIDE_HEADER)
        if forced:
            variant = self._forced(ctx, a, forced)
        else:
            key = ctx.headers.get("x-session-id") or ctx.user
            chosen = a.group.choose(key)
            if chosen is None:
                raise GatewayError(
                    503,
                    f"Every variant of model '{alias}' has weight 0.",
                    code="no_variant_available",
                    headers={"retry-after": "5"},
                )
            variant = chosen
        # (alias, variant, forced): forced requests are tests, kept out of the guard.
        ctx.extensions["variant"] = (alias, variant, bool(forced))
        ctx.response_headers[OVERRIDE_HEADER] = variant
        return variant

    def _forced(self, ctx: RequestContext, a: _Alias, forced: str) -> str:
        models = a.group.models
        if forced not in models:
            raise GatewayError(
                400,
                f"'{forced}' is not a variant of model '{a.group.alias}' "
                f"(variants: {', '.join(models)}).",
                code="invalid_variant",
                param=OVERRIDE_HEADER,
            )
        p = ctx.principal
        if p is not None and not all(p.allows(m) for m in models):
            raise GatewayError(
                403,
                f"This API key may not choose a variant of '{a.group.alias}': the "
                f"{OVERRIDE_HEADER} header needs a key allowed to use every variant "
                f"({', '.join(models)}).",
                code="variant_override_not_allowed",
                param=OVERRIDE_HEADER,
            )
        return forced

    def observe(self, ctx: RequestContext) -> None:
        v = ctx.extensions.get("variant")
        if v is None:
            return
        alias, variant, forced = v
        a = self.aliases.get(alias)
        now = time.time()
        latency = time.perf_counter() - ctx.t0
        requests, latencies, ttfts = self.metrics.per_request(alias, variant, ctx.status)
        requests.inc()
        latencies.observe(latency)
        if ctx.ttft_s is not None:
            ttfts.observe(ctx.ttft_s)
        # Forced requests are tests: they count in metrics, not in the guard's comparison.
        if a is not None and not forced and ctx.status != 499:
            a.window.record(
                variant, now, ok=200 <= ctx.status < 400, error=ctx.status >= 500,
                latency_s=latency,
            )  # fmt: skip
        if self.events is not None:
            usage = ctx.usage or {}
            prompt = ctx.extensions.get("prompt")
            p = ctx.principal
            # A tuple in REQUEST_FIELDS' order: the log's writer thread makes the JSON.
            self.events.append((
                now, alias, variant, forced, ctx.request_id, ctx.route, ctx.status, latency,
                ctx.ttft_s, usage.get("prompt_tokens"), usage.get("completion_tokens"),
                p.name if p is not None else None, getattr(prompt, "name", None),
                getattr(prompt, "version", None),
                getattr(ctx.extensions.get("spend"), "usd", None),
            ))  # fmt: skip

    # --- weights -------------------------------------------------------------------------
    async def set_weights(self, alias: str, weights: dict[str, float], by: str) -> AliasState:
        """Set some or all of an alias's weights (others keep theirs); validated first."""
        a = self.aliases.get(alias)
        if a is None:
            raise VariantError(f"model '{alias}' has no variants")
        unknown = [k for k in weights if k not in a.group.models]
        if unknown:
            raise VariantError(
                f"'{unknown[0]}' is not a variant of '{alias}' "
                f"(variants: {', '.join(a.group.models)})"
            )
        for k, w in weights.items():
            if not isinstance(w, int | float) or isinstance(w, bool) or not 0 <= w <= 100:
                raise VariantError(f"weight of '{k}' must be a number from 0 to 100")
        async with self._lock:
            new = {**a.state.weights, **{k: float(w) for k, w in weights.items()}}
            if not sum(new.values()) > 0:
                raise VariantError(f"the weights of '{alias}' would sum to 0")
            now = time.time()
            for k, w in weights.items():
                if w > 0 and k in a.state.rolled_back:
                    del a.state.rolled_back[k]
                    a.state.reset_at[k] = now
            a.state.weights = new
            a.state.updated_at, a.state.updated_by = now, by
            self._apply(a)
            await self.store.save(alias, a.state)
            await self._write_back(a)
        log.info("variants %s: weights %s (by %s)", alias, new, by)
        return a.state

    async def rollback(self, alias: str, variant: str, verdict: GuardVerdict) -> None:
        a = self.aliases[alias]
        async with self._lock:
            before = a.state.weights.get(variant, 0.0)
            if before <= 0:
                return
            weights = dict(a.state.weights)
            weights[variant] = 0.0
            if not sum(weights.values()) > 0:
                # The variant had all the traffic: the baseline takes it back.
                weights[a.group.baseline] = before
            now = time.time()
            a.state.weights = weights
            a.state.rolled_back[variant] = {
                "reason": verdict.reason,
                "message": verdict.message,
                "at": now,
                "weight_before": before,
            }
            a.state.updated_at, a.state.updated_by = now, "guard"
            self._apply(a)
            m = self.metrics
            m.child(m.breaches, alias, variant, verdict.reason or "unknown").inc()
            await self.store.save(alias, a.state)
            await self._write_back(a)
        log.warning(
            "variants %s: guard rolled back %s to weight 0: %s", alias, variant, verdict.message
        )

    def _apply(self, a: _Alias) -> None:
        a.group.set_weights([a.state.weights.get(m, 0.0) for m in a.group.models])
        self._export(a)

    def _export(self, a: _Alias) -> None:
        m = self.metrics
        for model, w in zip(a.group.models, a.group.weights, strict=True):
            m.child(m.weight, a.group.alias, model).set(w)
            m.child(m.rolled_back, a.group.alias, model).set(
                1 if model in a.state.rolled_back else 0
            )

    async def _write_back(self, a: _Alias) -> None:
        if self.write_back is None:
            return
        try:
            if await asyncio.to_thread(self.write_back, a.group.alias, dict(a.state.weights)):
                a.state.config_weights = dict(a.state.weights)
        except Exception as e:  # a read-only config (a ConfigMap) keeps the state in the store
            log.warning("variants %s: weights not written back to the config: %s",
                        a.group.alias, e)  # fmt: skip

    # --- state and guard -----------------------------------------------------------------
    async def _load_one(self, alias: str) -> None:
        a = self.aliases[alias]
        stored = await self.store.load(alias)
        config_weights = dict(a.state.config_weights)
        if (
            stored is not None
            and set(stored.weights) == set(a.group.models)
            and stored.config_weights == config_weights
        ):
            a.state = stored
            log.info("variants %s: weights %s restored from the state store", alias,
                     stored.weights)  # fmt: skip
        else:
            if stored is not None:
                log.info("variants %s: the config's weights changed; they replace the stored",
                         alias)  # fmt: skip
            a.state = AliasState(weights=config_weights, config_weights=config_weights)
            await self.store.save(alias, a.state)
        self._apply(a)

    async def start(self) -> None:
        for alias in list(self.aliases):
            await self._load_one(alias)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="variants")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        with contextlib.suppress(Exception):
            for alias, a in self.aliases.items():
                await self.store.push(alias, a.window)
        await self.store.close()

    def _tick_s(self) -> float:
        ticks = [a.guard.interval_s for a in self.aliases.values() if a.guard is not None]
        if self.store.shared:
            ticks.append(self._sync_interval)
        return min(ticks, default=self._sync_interval)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s())
            try:
                await self.sync()
            except Exception as e:
                log.warning("variants: sync failed (%s: %s); retrying", type(e).__name__, e)

    async def sync(self, now: float | None = None) -> None:
        """One round: share counts, take other gateways' weight changes, run due guards."""
        for alias, a in list(self.aliases.items()):
            await self.store.push(alias, a.window)
            if self.store.shared:
                stored = await self.store.load(alias)
                if stored is not None and stored.updated_at > a.state.updated_at:
                    a.state = stored
                    self._apply(a)
            t = time.time() if now is None else now
            a.window.prune(t)
            if a.guard is None or not a.guard.enabled or t < a.next_check:
                continue
            a.next_check = t + a.guard.interval_s
            await self._guard(alias, a, t)

    async def verdicts(self, alias: str, now: float | None = None) -> dict[str, GuardVerdict]:
        """The guard's reading of each variant against the baseline, as of now."""
        a = self.aliases[alias]
        guard = a.guard or GuardConfig()
        t = time.time() if now is None else now
        slots = await self.store.window_totals(alias, a.window, a.group.models, t)
        epochs = a.window.epochs(t)

        def since(model: str) -> int | None:
            r = a.state.reset_at.get(model)
            return a.window.epoch(r) if r is not None else None

        base = a.group.baseline
        base_total = total(slots[base], epochs, since(base))
        return {
            m: judge(guard, total(slots[m], epochs, since(m)), base_total)
            for m in a.group.models
            if m != base
        }

    async def _guard(self, alias: str, a: _Alias, now: float) -> None:
        for variant, v in (await self.verdicts(alias, now)).items():
            if v.status == "breach" and a.state.weights.get(variant, 0.0) > 0:
                await self.rollback(alias, variant, v)

    async def status(self, alias: str) -> dict[str, Any]:
        a = self.aliases[alias]
        verdicts = await self.verdicts(alias)
        return {
            "model": alias,
            "baseline": a.group.baseline,
            "variants": [
                {
                    "model": m,
                    "weight": w,
                    "config_weight": a.state.config_weights.get(m),
                    "rolled_back": a.state.rolled_back.get(m),
                    "guard": verdicts[m].as_dict() if m in verdicts else None,
                }
                for m, w in zip(a.group.models, a.group.weights, strict=True)
            ],
            "guard": a.guard.model_dump() if a.guard is not None else None,
            "updated_at": a.state.updated_at,
            "updated_by": a.state.updated_by,
        }
