"""The FastAPI application: routes, lifespan (sessions, engines, health checks), error shapes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import _engine_stats as engine_stats
from gateway._cold_start import ColdStartCollector, ColdStarts
from gateway._config import GatewayConfig
from gateway._errors import GatewayError, error_response
from gateway._health import check_all, health_loop
from gateway._proxy import Proxy
from gateway._responses import install_responses
from gateway._router import DataHandler, DataRouter
from gateway._state import GatewayState
from gateway.variants import VariantRouter
from gateway.variants import install as install_variants

log = logging.getLogger("llmops.gateway")

# Plug-ins add routes, resolvers and background tasks during start-up (prompts, retrieval...).
Plugin = Callable[["GatewayApp"], Any]

_JSON = "application/json"


def _openapi_body(schema_name: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "title": schema_name,
        "required": ["model"],
        "additionalProperties": True,
    }
    return {"requestBody": {"required": True, "content": {_JSON: {"schema": schema}}}}


class _GatewayFastAPI(FastAPI):
    """FastAPI entered through a :class:`DataRouter`: the ASGI server calls this app, the
    router serves the data routes and hands every other request to FastAPI itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_router = DataRouter(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.data_router(scope, receive, send)


class GatewayApp:
    """Holds the state and the extension points; ``create_app`` returns its FastAPI app."""

    def __init__(self, config: GatewayConfig, plugins: list[Plugin] | None = None) -> None:
        self.config = config
        self.state = GatewayState.from_config(config)
        self.proxy = Proxy(self.state)
        self.cold_starts = self.proxy.cold_starts = ColdStarts(self.state, self._start_on_demand)
        self.state.metrics.registry.register(ColdStartCollector(self.cold_starts))
        self.startup: list[Callable[[], Any]] = []
        self.shutdown: list[Callable[[], Any]] = []
        self.readiness_checks: list[Callable[[], tuple[bool, dict[str, Any]]]] = []
        self.engines: list[Any] = []
        # Called with each accepted /v1/feedback record (the variants' event log).
        self.feedback_sinks: list[Callable[[dict[str, Any]], None]] = []
        self.variants: VariantRouter | None = None  # set by install_variants when configured
        self.app = _GatewayFastAPI(
            title="llmops gateway",
            version="0.1.0",
            lifespan=self._lifespan,
            docs_url=None,
            redoc_url=None,
        )
        self._data_routes()
        self.responses = install_responses(self)
        install_variants(self)  # a config's variants are part of its models, not an option
        self._model_routes()
        self._health_routes()
        self._metrics_route()
        self._error_handlers()
        for plugin in plugins or ():
            plugin(self)

    @property
    def data_router(self) -> DataRouter:
        return self.app.data_router

    def add_data_route(self, path: str, endpoint: DataHandler, schema_name: str) -> None:
        """Serve POST ``path`` from the data router, never through FastAPI's middleware stack.

        The FastAPI route stays registered for the OpenAPI document and for the other methods
        (405). ``endpoint`` must answer its own errors: the router turns anything it raises
        into a bare 500.
        """
        self.app.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            openapi_extra=_openapi_body(schema_name),
            response_class=Response,
        )
        self.data_router.routes[path] = endpoint

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        st = self.state
        st.open_session()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._start_engines()
            await check_all(st)
            for fn in self.startup:
                res = fn()
                if asyncio.iscoroutine(res):
                    await res
            tasks.append(asyncio.create_task(health_loop(st), name="health-checks"))
            # One /metrics poller for every consumer (prefix routing here, load shedding
            # registers its own want): each replica is scraped once per round.
            poller = engine_stats.poller_for(st)
            poller.want("routing", self._routing_wants)
            tasks.append(asyncio.create_task(poller.run(st.session), name="engine-stats"))
            yield
        finally:
            for t in tasks:
                t.cancel()
            for fn in self.shutdown:
                with contextlib.suppress(Exception):
                    res = fn()
                    if asyncio.iscoroutine(res):
                        await res
            await self._stop_engines()
            await st.session.close()

    def _routing_wants(self) -> engine_stats.Want | None:
        """Prefix-routed replicas, at the shortest interval their models' routing asks for."""
        prefix = [m.routing for m in self.config.models if m.routing.strategy == "prefix"]
        if not prefix:
            return None
        return engine_stats.Want(
            self.state.prefix_routed(),
            min(c.scrape_interval_s for c in prefix),
            min(c.scrape_timeout_s for c in prefix),
        )

    async def _start_engines(self) -> None:
        wanted = [m for m in self.config.models if m.engine is not None and not m.upstreams]
        later = {m.name for m in wanted if m.start == "on_first_request"}
        self.cold_starts.on_demand |= later
        # Engines start together: each takes about a minute to reach /health on a CPU.
        await asyncio.gather(*(self._start_engine(m) for m in wanted if m.name not in later))

    async def _start_engine(self, m: Any) -> None:
        from engine import EngineManager

        mgr = EngineManager(name=m.name, served_name=m.upstream_name, spec=m.engine)
        self.engines.append(mgr)
        url = await mgr.start()
        self.state.add_replica(m.name, url)
        log.info("local engine for %s ready at %s", m.name, url)

    async def _start_on_demand(self, model: str) -> None:
        (m,) = [m for m in self.config.models if m.name == model]
        await self._start_engine(m)

    async def _stop_engines(self) -> None:
        for mgr in reversed(self.engines):
            with contextlib.suppress(Exception):
                await mgr.stop()
        self.engines.clear()

    def _data_routes(self) -> None:
        proxy = self.proxy

        async def chat(request: Request) -> Response:
            return await proxy.handle(request, "chat")

        async def completions(request: Request) -> Response:
            return await proxy.handle(request, "completions")

        async def embeddings(request: Request) -> Response:
            return await proxy.handle(request, "embeddings")

        self.add_data_route("/v1/chat/completions", chat, "CreateChatCompletionRequest")
        self.add_data_route("/v1/completions", completions, "CreateCompletionRequest")
        self.add_data_route("/v1/embeddings", embeddings, "CreateEmbeddingRequest")

    def _model_routes(self) -> None:
        state = self.state
        created = int(time.time())

        def model_obj(name: str) -> dict[str, Any]:
            # The live state, not the start-up config: admin reloads change models.
            canonical = state.canonical.get(name)
            owner = next((m.owned_by for m in state.config.models if m.name == canonical), "llmops")
            return {"id": name, "object": "model", "created": created, "owned_by": owner}

        async def list_models(request: Request) -> Response:
            state.keys.authenticate(request.headers.get("authorization"))
            names = list(state.canonical)
            return Response(
                orjson.dumps({"object": "list", "data": [model_obj(n) for n in names]}),
                media_type=_JSON,
            )

        async def get_model(model: str, request: Request) -> Response:
            state.keys.authenticate(request.headers.get("authorization"))
            state.pool_for(model)
            return Response(orjson.dumps(model_obj(model)), media_type=_JSON)

        self.app.add_api_route("/v1/models", list_models, methods=["GET"], response_class=Response)
        self.app.add_api_route(
            "/v1/models/{model:path}", get_model, methods=["GET"], response_class=Response
        )

    def _health_routes(self) -> None:
        async def healthz() -> Response:
            return Response(b'{"status":"ok"}', media_type=_JSON)

        async def readyz() -> Response:
            ready, detail = self._readiness()
            return Response(
                orjson.dumps({"status": "ready" if ready else "not_ready", **detail}),
                status_code=200 if ready else 503,
                media_type=_JSON,
            )

        self.app.add_api_route("/healthz", healthz, methods=["GET"], response_class=Response)
        self.app.add_api_route("/readyz", readyz, methods=["GET"], response_class=Response)

    def _readiness(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        models = {
            name: {
                # A model that may be cold (scaled to zero, engine on demand) holds its
                # requests until a replica is up: it does not make the gateway unready.
                "ready": pool.any_available(now) or pool.cold_start_s is not None,
                "replicas": [
                    {
                        "url": r.url,
                        "healthy": r.healthy,
                        "available": r.available(now),
                        "in_flight": r.in_flight,
                    }
                    for r in pool.replicas
                ],
            }
            for name, pool in self.state.pools.items()
        }
        ready = all(m["ready"] for m in models.values())
        detail: dict[str, Any] = {"models": models}
        for check in self.readiness_checks:
            ok, info = check()
            ready = ready and ok
            detail.update(info)
        return ready, detail

    def _metrics_route(self) -> None:
        registry = self.state.metrics.registry

        async def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

        self.app.add_api_route("/metrics", metrics, methods=["GET"], response_class=Response)

    def _error_handlers(self) -> None:
        app = self.app

        @app.exception_handler(GatewayError)
        async def _gateway_error(request: Request, exc: GatewayError) -> Response:
            return error_response(exc, request.headers.get("x-request-id"))

        @app.exception_handler(StarletteHTTPException)
        async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
            msg = (
                f"Unknown request URL: {request.method} {request.url.path}."
                if exc.status_code == 404
                else str(exc.detail)
            )
            code = "unknown_url" if exc.status_code == 404 else None
            return error_response(GatewayError(exc.status_code, msg, code=code))

        @app.exception_handler(RequestValidationError)
        async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
            errs = exc.errors()
            param = ".".join(str(p) for p in errs[0]["loc"]) if errs else None
            msg = errs[0]["msg"] if errs else "Invalid request"
            return error_response(GatewayError(400, f"Invalid request: {msg}", param=param))

        @app.exception_handler(Exception)
        async def _unexpected(request: Request, exc: Exception) -> Response:
            log.exception("unexpected error on %s", request.url.path)
            return error_response(
                GatewayError(500, "The gateway hit an internal error.", code="internal_error"),
                request.headers.get("x-request-id"),
            )


def create_app(config: GatewayConfig, plugins: list[Plugin] | None = None) -> FastAPI:
    return GatewayApp(config, plugins).app
