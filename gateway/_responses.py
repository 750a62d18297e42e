"""The Responses API: ``POST /v1/responses`` on the data path, retrieval and cancel by id.

``POST /v1/responses`` takes the chat path (keys, limits, routing, failover, metrics, traces,
prompt resolution of its ``prompt`` object). What is particular is state: vLLM keeps a response
(and the conversation behind it) only in the memory of the replica that created it, and only
when that replica runs with ``VLLM_ENABLE_RESPONSES_API_STORE=1`` (engine option
``responses_store``). So the gateway remembers which replica created each response id, in a
bounded LRU map filled from the plain body's ``id`` or the stream's ``response.created`` event,
and sends ``GET /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel`` and a request carrying
``previous_response_id`` there. An id it does not know (evicted, or created before the gateway
restarted) is looked for on the replicas the key may use. A replica that answers "not found"
becomes a clear error naming the store setting.

Only the key that created a response may read, cancel or continue it (with auth on).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway._context import RequestContext
from gateway._errors import GatewayError, error_response
from gateway._keys import Principal
from gateway._replicas import Replica

if TYPE_CHECKING:
    from gateway._app import GatewayApp

ROUTE = "responses"
PATH = "/v1/responses"
MAX_LOCATIONS = 65_536
STORE_HINT = (
    "vLLM keeps responses only when the replica runs with VLLM_ENABLE_RESPONSES_API_STORE=1 "
    "(engine option responses_store: true), in that replica's memory until it restarts."
)
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True, slots=True)
class Location:
    """Where a response lives: its model, the replica that created it, the key that did."""

    model: str
    url: str
    owner: str | None


class ResponseLocations:
    """Response id -> :class:`Location`, least recently used dropped past ``max_entries``."""

    def __init__(self, max_entries: int = MAX_LOCATIONS) -> None:
        self.max_entries = max_entries
        self._map: OrderedDict[str, Location] = OrderedDict()

    def __len__(self) -> int:
        return len(self._map)

    def remember(self, response_id: str, location: Location) -> None:
        self._map[response_id] = location
        self._map.move_to_end(response_id)
        while len(self._map) > self.max_entries:
            self._map.popitem(last=False)

    def clear(self) -> None:
        """Forget every location (as a gateway restart does)."""
        self._map.clear()

    def get(self, response_id: str) -> Location | None:
        loc = self._map.get(response_id)
        if loc is not None:
            self._map.move_to_end(response_id)
        return loc


def _owner(principal: Principal | None) -> str | None:
    return principal.name if principal is not None else None


def not_found(
    response_id: str, *, previous: bool, known: bool, unreachable: int = 0
) -> GatewayError:
    """The error for a response no replica has: the store is off, or the replica restarted."""
    what = "Previous response" if previous else "Response"
    where = "is not stored on the replica that created it" if known else "was not found"
    if unreachable:
        where += f" ({unreachable} replica(s) could not be asked)"
    return GatewayError(
        404,
        f"{what} '{response_id}' {where}. {STORE_HINT}",
        code="previous_response_not_found" if previous else "response_not_found",
        param="previous_response_id" if previous else "response_id",
    )


class ResponsesRoutes:
    """The routes and the hook; ``install_responses`` builds one per gateway."""

    def __init__(self, gw: GatewayApp, max_entries: int = MAX_LOCATIONS) -> None:
        self.gw = gw
        self.state = gw.state
        self.locations = ResponseLocations(max_entries)

    # --- POST /v1/responses ---------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        resp = await self.gw.proxy.handle(request, ROUTE)
        if resp.status_code == 404 and not isinstance(resp, StreamingResponse):
            return self._explain_missing_previous(resp)
        return resp

    def _explain_missing_previous(self, resp: Response) -> Response:
        """vLLM answers an unknown ``previous_response_id`` with 404 ``param: response_id``;
        the client gets why (the gateway's own 404s name other params)."""
        try:
            err = orjson.loads(bytes(resp.body)).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            return resp
        if not isinstance(err, dict) or err.get("param") != "response_id":
            return resp
        m = _QUOTED.search(str(err.get("message", "")))
        rid = m.group(1) if m else "?"
        exc = not_found(rid, previous=True, known=self.locations.get(rid) is not None)
        out = error_response(exc)
        for k, v in resp.headers.items():
            if k not in ("content-length", "content-type"):
                out.headers[k] = v
        return out

    async def pin(self, ctx: RequestContext) -> None:
        """Admission hook: a Responses request remembers where its response is created, and
        one continuing a response (``previous_response_id``) goes to the replica holding it."""
        if ctx.route != ROUTE:
            return
        ctx.on_finish.append(self._remember)
        prev = ctx.data.get("previous_response_id") if ctx.data is not None else None
        if not isinstance(prev, str) or not prev:
            return
        owner = _owner(ctx.principal)
        loc = self.locations.get(prev)
        pool = self.state.pools[ctx.model]
        if loc is None and len(pool.replicas) > 1:
            loc = await self._probe(prev, ctx.model, pool.replicas, owner, ctx.request_id)
        if loc is None:
            return  # one replica, or nobody has it: normal routing (a 404 is explained)
        if loc.owner != owner:
            raise not_found(prev, previous=True, known=False)
        if loc.model != ctx.model:
            raise GatewayError(
                400,
                f"Previous response '{prev}' was created by model '{loc.model}'; continue it "
                "with that model (a response lives on the replica that created it).",
                code="invalid_value",
                param="previous_response_id",
            )
        replica = self._replica(loc)
        if replica is None:
            return  # its replica left the pool (config reload): nobody else has it
        if not replica.available(time.monotonic()):
            raise GatewayError(
                503,
                f"The replica holding previous response '{prev}' is unavailable; a response "
                "can only be continued on the replica that created it. Try again shortly.",
                code="previous_response_unavailable",
                headers={"retry-after": "5"},
            )
        ctx.extensions["replicas"] = [replica]

    def _remember(self, ctx: RequestContext) -> None:
        rid = ctx.extensions.get("response_id")
        if isinstance(rid, str) and ctx.replica is not None:
            self.locations.remember(
                rid, Location(ctx.model, ctx.replica.url, _owner(ctx.principal))
            )

    def _replica(self, loc: Location) -> Replica | None:
        pool = self.state.pools.get(loc.model)
        if pool is None:
            return None
        return next((r for r in pool.replicas if r.url == loc.url), None)

    def _candidates(self, principal: Principal | None) -> list[tuple[str, Replica]]:
        return [
            (pool.name, r)
            for pool in self.state.pools.values()
            if pool.kind == "chat" and (principal is None or principal.allows(pool.name))
            for r in pool.replicas
        ]

    async def _locate(
        self, rid: str, candidates: list[tuple[str, Replica]], request_id: str
    ) -> tuple[tuple[str, Replica] | None, int]:
        """Ask the available candidates at once (GET, the health-check timeout) which one holds
        ``rid``: (its model and replica or None, how many could not be asked)."""
        now = time.monotonic()
        up = [(m, r) for m, r in candidates if r.available(now)]
        timeout = aiohttp.ClientTimeout(total=self.state.config.health.timeout_s)

        async def status(replica: Replica) -> int | None:
            resp = await self._ask(replica, "GET", _id_path(rid), None, request_id, timeout)
            if resp is None:
                return None
            resp.release()
            return resp.status

        answers = await asyncio.gather(*(status(r) for _, r in up))
        unreachable = len(candidates) - len(up) + answers.count(None)
        found = next((c for c, code in zip(up, answers, strict=True) if code == 200), None)
        return found, unreachable

    async def _probe(
        self, rid: str, model: str, replicas: list[Replica], owner: str | None, request_id: str
    ) -> Location | None:
        """The replica of ``model`` holding ``rid``, asked for and then remembered."""
        found, _ = await self._locate(rid, [(model, r) for r in replicas], request_id)
        if found is None:
            return None
        loc = Location(model, found[1].url, owner)
        self.locations.remember(rid, loc)
        return loc

    async def _ask(
        self,
        replica: Replica,
        method: str,
        path: str,
        params: Any,
        request_id: str,
        probe_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse | None:
        """The replica's answer, or None when it could not be reached (a probe's failure does
        not count against the replica: the health checks judge it)."""
        st = self.state
        headers = {"x-request-id": request_id}
        if replica.api_key:
            headers["authorization"] = f"Bearer {replica.api_key}"
        try:
            return await st.session.request(
                method,
                replica.url + path,
                params=params,
                headers=headers,
                timeout=probe_timeout or st.timeout,
            )
        except (aiohttp.ClientError, TimeoutError):
            if probe_timeout is None:
                st.replica_failed(replica, "connect")
            return None

    # --- GET /v1/responses/{id}, POST /v1/responses/{id}/cancel ----------------------------
    async def by_id(self, request: Request, response_id: str, action: str) -> Response:
        st = self.state
        t0 = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        route = f"{ROUTE}_{action}"
        model = "-"
        try:
            principal = st.keys.authenticate(request.headers.get("authorization"))
            owner = _owner(principal)
            loc = self.locations.get(response_id)
            target: tuple[str, Replica] | None = None
            if loc is not None:
                if loc.owner != owner or (
                    principal is not None and not principal.allows(loc.model)
                ):
                    raise not_found(response_id, previous=False, known=False)
                replica = self._replica(loc)
                target = (loc.model, replica) if replica is not None else None
            if target is None:  # unknown here, or its replica left the pool: ask around
                target, unreachable = await self._locate(
                    response_id, self._candidates(principal), request_id
                )
                if target is None:
                    raise not_found(
                        response_id, previous=False, known=loc is not None, unreachable=unreachable
                    )
                self.locations.remember(response_id, Location(target[0], target[1].url, owner))
            model, replica = target
            if not replica.available(time.monotonic()):
                raise GatewayError(
                    503,
                    f"The replica holding response '{response_id}' is unavailable; a response "
                    "lives on the replica that created it. Try again shortly.",
                    code="upstream_unavailable",
                    headers={"retry-after": "5"},
                )
            path = _id_path(response_id) + ("/cancel" if action == "cancel" else "")
            method = "POST" if action == "cancel" else "GET"
            resp = await self._ask(replica, method, path, request.query_params, request_id)
            if resp is None:
                raise GatewayError(
                    503,
                    f"The replica holding response '{response_id}' could not be reached. "
                    "Try again shortly.",
                    code="upstream_unavailable",
                    headers={"retry-after": "5"},
                )
            if resp.status == 404:  # it created the response but does not keep it
                resp.release()
                raise not_found(response_id, previous=False, known=True)
            out = await _relay(resp, request_id)
            st.metrics.observe_request(model, route, out.status_code, time.perf_counter() - t0)
            return out
        except GatewayError as e:
            st.metrics.observe_request(model, route, e.status, time.perf_counter() - t0)
            return error_response(e, request_id)


def _id_path(response_id: str) -> str:
    return f"{PATH}/{quote(response_id, safe='')}"


async def _relay(resp: aiohttp.ClientResponse, request_id: str) -> Response:
    """The replica's answer as it came: JSON read whole, a stream (``?stream=true``) relayed."""
    ctype = resp.headers.get("content-type", "application/json")
    headers = {"x-request-id": request_id}
    if ctype.startswith("text/event-stream"):

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            except (aiohttp.ClientError, TimeoutError):
                return
            finally:
                resp.close()

        return StreamingResponse(
            chunks(), status_code=resp.status, media_type=ctype, headers=headers | _SSE_HEADERS
        )
    try:
        payload = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as e:
        raise GatewayError(502, "The upstream failed mid-response.", code="upstream_error") from e
    finally:
        resp.release()
    return Response(payload, status_code=resp.status, media_type=ctype, headers=headers)


def install_responses(gw: GatewayApp) -> ResponsesRoutes:
    """Add the Responses routes and the pinning hook to ``gw``; returns the routes object
    (``.locations`` is the id -> replica map)."""
    routes = ResponsesRoutes(gw)
    gw.add_data_route(PATH, routes.create, "CreateResponse")
    gw.proxy.admissions.append(routes.pin)

    async def retrieve(response_id: str, request: Request) -> Response:
        return await routes.by_id(request, response_id, "get")

    async def cancel(response_id: str, request: Request) -> Response:
        return await routes.by_id(request, response_id, "cancel")

    async def delete(response_id: str, request: Request) -> Response:
        gw.state.keys.authenticate(request.headers.get("authorization"))
        raise GatewayError(
            405,
            "Deleting a response is not supported: vLLM has no DELETE /v1/responses/{id}; "
            "a stored response lives in its replica's memory until the replica restarts.",
            code="unsupported_operation",
        )

    app = gw.app
    app.add_api_route(PATH + "/{response_id}", retrieve, methods=["GET"], response_class=Response)
    app.add_api_route(PATH + "/{response_id}", delete, methods=["DELETE"], response_class=Response)
    app.add_api_route(
        PATH + "/{response_id}/cancel", cancel, methods=["POST"], response_class=Response
    )
    return routes
