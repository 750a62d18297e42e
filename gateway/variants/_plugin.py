"""Wires model variants into the gateway: the choice on the request path, the observer, the
guard's background task, the admin routes and the feedback records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from common import llmops_home, variant_events_file
from gateway._admin import check_admin, json_response
from gateway._config import GatewayConfig
from gateway._errors import GatewayError
from gateway.variants._events import EventLog
from gateway.variants._router import VariantError, VariantRouter
from gateway.variants._store import FileStateStore, RedisStateStore, StateStore
from gateway.variants._write_back import write_weights

if TYPE_CHECKING:
    from gateway._app import GatewayApp


class WeightsUpdate(BaseModel):
    """``PUT /admin/variants/{model}``: new weights for some or all variants."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, float] = Field(min_length=1)
    by: str = Field("admin", max_length=64)


def state_file(config: GatewayConfig) -> Path:
    v = config.variants
    return Path(v.state_file) if v.state_file else llmops_home() / "gateway" / "variant-state.json"


def events_file(config: GatewayConfig) -> Path:
    v = config.variants
    return Path(v.events_file) if v.events_file else variant_events_file()


def _store(config: GatewayConfig) -> StateStore:
    mode = config.variants.state
    if mode == "auto":
        mode = "redis" if config.limits.backend == "redis" else "file"
    if mode == "redis":
        return RedisStateStore(config.limits.redis, prefix=config.limits.redis.key_prefix + "var:")
    return FileStateStore(state_file(config))


class _EventStats(Collector):
    def __init__(self, events: EventLog) -> None:
        self.events = events

    def collect(self) -> Any:
        c = CounterMetricFamily("llmops_variant_events", "Variant records, by outcome",
                                labels=["outcome"])  # fmt: skip
        c.add_metric(["written"], self.events.written)
        c.add_metric(["dropped"], self.events.dropped)
        yield c


def install(gw: GatewayApp) -> VariantRouter | None:
    config = gw.config
    if not any(m.variants for m in config.models):
        return None
    state = gw.state
    registry = state.metrics.registry
    events = EventLog(events_file(config)) if config.variants.record_events else None
    router = VariantRouter(config, state.canonical, _store(config), registry, events)
    gw.proxy.variants = router
    gw.proxy.observers.append(router.observe)
    gw.variants = router
    if events is not None:
        registry.register(_EventStats(events))
        gw.feedback_sinks.append(events.append)
        if not config.observability.active and config.observability.feedback.enabled:
            # Without tracing, feedback still reaches the A/B report through the event log.
            from gateway._feedback import feedback_route

            route = feedback_route(gw, None, config.observability.feedback)
            gw.app.add_api_route("/v1/feedback", route, methods=["POST"], response_class=Response)

    source = config.source_path
    if source is not None and config.variants.write_back:

        def write_back(alias: str, weights: dict[str, float]) -> bool:
            # The file may name a variant by an alias of its model: map back to what it wrote.
            m = next((m for m in gw.config.models if m.name == alias), None)
            names = {state.canonical.get(v.model, v.model): v.model for v in m.variants or ()} \
                if m is not None else {}  # fmt: skip
            return write_weights(source, alias, {names.get(k, k): w for k, w in weights.items()})

        router.write_back = write_back

    async def start() -> None:
        await router.start()
        if events is not None:
            events.start()

    async def stop() -> None:
        await router.stop()
        if events is not None:
            await events.stop()

    gw.startup.append(start)
    gw.shutdown.append(stop)
    state.reload_hooks.append(lambda new: router.reconfigure(new, state.canonical))
    _admin_routes(gw, router)
    return router


def _admin_routes(gw: GatewayApp, router: VariantRouter) -> None:
    keys = gw.state.keys

    def require_admin(request: Request) -> None:
        check_admin(keys, request)

    def alias_of(model: str) -> str:
        alias = gw.state.canonical.get(model, model)
        if alias not in router.aliases:
            raise GatewayError(404, f"The model '{model}' has no variants.",
                               code="model_not_found", param="model")  # fmt: skip
        return alias

    async def list_variants(request: Request) -> Response:
        require_admin(request)
        data = [await router.status(a) for a in router.aliases]
        return json_response({"object": "list", "data": data})

    async def get_variants(model: str, request: Request) -> Response:
        require_admin(request)
        return json_response(await router.status(alias_of(model)))

    async def put_variants(model: str, request: Request) -> Response:
        require_admin(request)
        alias = alias_of(model)
        try:
            body = WeightsUpdate.model_validate_json(await request.body())
        except ValidationError as e:
            err = e.errors(include_input=False, include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise GatewayError(400, f"Invalid weights: {loc}: {err['msg']}",
                               code="invalid_weights", param=loc or None) from None  # fmt: skip
        canonical = gw.state.canonical
        weights = {canonical.get(k, k): w for k, w in body.weights.items()}
        try:
            await router.set_weights(alias, weights, by=body.by)
        except VariantError as e:
            raise GatewayError(400, str(e), code="invalid_weights", param="weights") from None
        return json_response(await router.status(alias))

    app = gw.app
    tags: list[Any] = ["admin"]
    app.add_api_route("/admin/variants", list_variants, methods=["GET"],
                      response_class=Response, tags=tags)  # fmt: skip
    app.add_api_route("/admin/variants/{model:path}", get_variants, methods=["GET"],
                      response_class=Response, tags=tags)  # fmt: skip
    app.add_api_route("/admin/variants/{model:path}", put_variants, methods=["PUT"],
                      response_class=Response, tags=tags)  # fmt: skip
