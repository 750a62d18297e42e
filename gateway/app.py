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

from gateway.config import GatewayConfig
from gateway.errors import GatewayError, error_response
from gateway.health import check_all, health_loop
from gateway.proxy import Proxy
from gateway.state import GatewayState

log = logging.getLogger("llmops.gateway")

# Plug-ins add routes, resolvers and background tasks during start-up (prompts, retrieval...).
Plugin = Callable[["GatewayApp"], Any]

_JSON = "application/json"


def _openapi_body(schema_name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": {"type": "object", "title": schema_name,
                                           "required": ["model"],
                                           "additionalProperties": True}}},
        }
    }  # fmt: skip


class _FastPathFastAPI(FastAPI):
    """FastAPI whose three data-path POST routes skip the ASGI middleware stack and router.

    Used only while no user middleware is installed (CORS etc. take the normal path).
    The proxy already turns every GatewayError into an OpenAI-shaped response itself.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_routes: dict[str, Callable[[Request], Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self.user_middleware:
            handler = self.fast_routes.get(scope["path"])
            if handler is not None:
                request = Request(scope, receive, send)
                try:
                    response = await handler(request)
                except Exception:
                    log.exception("unexpected error on %s", scope["path"])
                    response = error_response(
                        GatewayError(
                            500, "The gateway hit an internal error.", code="internal_error"
                        )
                    )
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class GatewayApp:
    """Holds the state and the extension points; ``create_app`` returns its FastAPI app."""

    def __init__(self, config: GatewayConfig, plugins: list[Plugin] | None = None) -> None:
        self.config = config
        self.state = GatewayState.from_config(config)
        self.proxy = Proxy(self.state)
        self.startup: list[Callable[[], Any]] = []
        self.shutdown: list[Callable[[], Any]] = []
        self.readiness_checks: list[Callable[[], tuple[bool, dict[str, Any]]]] = []
        self.engines: list[Any] = []
        self.app = _FastPathFastAPI(
            title="llmops gateway",
            version="0.1.0",
            lifespan=self._lifespan,
            docs_url=None,
            redoc_url=None,
        )
        self._routes()
        for plugin in plugins or ():
            plugin(self)

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

    async def _start_engines(self) -> None:
        wanted = [m for m in self.config.models if m.engine is not None and not m.upstreams]
        if not wanted:
            return
        from gateway.engine import EngineManager

        async def start(m: Any) -> None:
            mgr = EngineManager(name=m.name, served_name=m.upstream_name, spec=m.engine)
            self.engines.append(mgr)
            url = await mgr.start()
            self.state.add_replica(m.name, url)
            log.info("local engine for %s ready at %s", m.name, url)

        # Engines start together: each takes about a minute to reach /health on a CPU.
        await asyncio.gather(*(start(m) for m in wanted))

    async def _stop_engines(self) -> None:
        for mgr in reversed(self.engines):
            with contextlib.suppress(Exception):
                await mgr.stop()
        self.engines.clear()

    def _routes(self) -> None:
        app, proxy = self.app, self.proxy

        async def chat(request: Request) -> Response:
            return await proxy.handle(request, "chat")

        async def completions(request: Request) -> Response:
            return await proxy.handle(request, "completions")

        async def embeddings(request: Request) -> Response:
            return await proxy.handle(request, "embeddings")

        for path, fn, name in (
            ("/v1/chat/completions", chat, "CreateChatCompletionRequest"),
            ("/v1/completions", completions, "CreateCompletionRequest"),
            ("/v1/embeddings", embeddings, "CreateEmbeddingRequest"),
        ):
            app.add_api_route(
                path, fn, methods=["POST"], openapi_extra=_openapi_body(name),
                response_class=Response,
            )  # fmt: skip
            app.fast_routes[path] = fn

        created = int(time.time())

        def model_obj(name: str) -> dict[str, Any]:
            # The live state, not the start-up config: admin reloads change models.
            canonical = self.state.canonical.get(name)
            owner = next(
                (m.owned_by for m in self.state.config.models if m.name == canonical), "llmops"
            )
            return {"id": name, "object": "model", "created": created, "owned_by": owner}

        async def list_models(request: Request) -> Response:
            self.state.keys.authenticate(request.headers.get("authorization"))
            names = list(self.state.canonical)
            return Response(
                orjson.dumps({"object": "list", "data": [model_obj(n) for n in names]}),
                media_type=_JSON,
            )

        async def get_model(model: str, request: Request) -> Response:
            self.state.keys.authenticate(request.headers.get("authorization"))
            self.state.pool_for(model)
            return Response(orjson.dumps(model_obj(model)), media_type=_JSON)

        async def healthz() -> Response:
            return Response(b'{"status":"ok"}', media_type=_JSON)

        async def readyz() -> Response:
            now = time.monotonic()
            models = {
                name: {
                    "ready": pool.any_available(now),
                    "replicas": [
                        {"url": r.url, "healthy": r.healthy, "available": r.available(now),
                         "in_flight": r.in_flight}
                        for r in pool.replicas
                    ],
                }
                for name, pool in self.state.pools.items()
            }  # fmt: skip
            ready = all(m["ready"] for m in models.values())
            detail: dict[str, Any] = {"models": models}
            for check in self.readiness_checks:
                ok, info = check()
                ready = ready and ok
                detail.update(info)
            return Response(
                orjson.dumps({"status": "ready" if ready else "not_ready", **detail}),
                status_code=200 if ready else 503,
                media_type=_JSON,
            )

        async def metrics() -> Response:
            return Response(generate_latest(self.state.metrics.registry),
                            media_type=CONTENT_TYPE_LATEST)  # fmt: skip

        app.add_api_route("/v1/models", list_models, methods=["GET"], response_class=Response)
        app.add_api_route(
            "/v1/models/{model:path}", get_model, methods=["GET"], response_class=Response
        )
        app.add_api_route("/healthz", healthz, methods=["GET"], response_class=Response)
        app.add_api_route("/readyz", readyz, methods=["GET"], response_class=Response)
        app.add_api_route("/metrics", metrics, methods=["GET"], response_class=Response)

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
