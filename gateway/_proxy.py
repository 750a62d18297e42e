"""The data path: edge checks -> request fields -> resolution -> admission -> replica ->
forward -> account. Bodies stay bytes unless resolution changes them; responses are relayed
as received.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway._body import with_model
from gateway._cold_start import ColdStarts
from gateway._context import Admission, Observer, RequestContext, Resolver
from gateway._errors import GatewayError, error_body, error_response
from gateway._metrics import GatewayMetrics
from gateway._replicas import Replica
from gateway._request_model import parse_body, routing_fields
from gateway._state import GatewayState
from gateway._usage import response_id_from_body, stream_scanner, usage_from_body

if TYPE_CHECKING:
    from gateway.variants import VariantRouter

log = logging.getLogger("llmops.gateway.proxy")

_JSON_HEAD = re.compile(rb"\s*[\[{]")
_JSON_TAIL = re.compile(rb"[\]}]\s*\Z")
LocalHandler = Callable[[dict[str, Any]], Awaitable[Response]]
_RETRYABLE_STATUS = frozenset({502, 503})
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
}


class Proxy:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.resolvers: list[Resolver] = []
        self.admissions: list[Admission] = []
        self.observers: list[Observer] = []
        # Models served in-process (local embedding models): canonical name -> handler.
        self.local: dict[str, LocalHandler] = {}
        # Aliases served by weighted variants (gateway.variants), when any are configured.
        self.variants: VariantRouter | None = None
        self.cold_starts: ColdStarts | None = None  # set by the app

    async def handle(self, request: Request, route: str) -> Response:
        st = self.state
        headers = request.headers
        ctx = RequestContext(
            request_id=headers.get("x-request-id") or uuid.uuid4().hex,
            route=route,
            t0=time.perf_counter(),
            headers=headers,
        )
        try:
            ctx.principal = st.keys.authenticate(headers.get("authorization"))
            body = await _read_body(request, st.config.server.max_body_bytes)
            data = ctx.data = parse_body(body)
            changed = False
            for resolve in self.resolvers:
                changed = await resolve(ctx) or changed
            data = ctx.data
            fields = routing_fields(route, data)
            ctx.requested_model = fields.model
            ctx.stream = bool(fields.stream)
            ctx.user = fields.user
            name = st.canonical_name(fields.model)
            if ctx.principal is not None and not ctx.principal.allows(name):
                raise GatewayError(
                    403,
                    f"This API key is not allowed to use the model '{fields.model}'.",
                    code="model_not_allowed",
                    param="model",
                )
            if self.variants is not None and name in self.variants.aliases:
                name = self.variants.choose(ctx, name)
            pool = st.pool_for(name)
            ctx.model = pool.name
            if changed or fields.model != pool.upstream_name:
                body = with_model(body, data, pool.upstream_name, reencode=changed)
            ctx.body = body
            for admit in self.admissions:
                await admit(ctx)
            local = self.local.get(pool.name)
            if local is not None:
                return await self._serve_local(ctx, local, data)
            return await self._forward(ctx)
        except GatewayError as e:
            ctx.status = e.status
            ctx.error = e.code or e.type
            self._finish(ctx)
            resp = error_response(e, ctx.request_id)
            resp.headers.update(ctx.response_headers)
            return resp

    async def _forward(self, ctx: RequestContext) -> Response:
        st = self.state
        model = ctx.model
        pool = st.pools[model]
        if pool.cold_start_s and self.cold_starts is not None and not pool.any_available():
            await self.cold_starts.wait(ctx, model, pool.cold_start_s)
        # A request continuing a stored response is pinned to its replica (gateway._responses).
        replicas = ctx.extensions.get("replicas") or pool.replicas
        path = _PATHS[ctx.route]
        affinity = None
        if st.config.server.affinity:
            affinity = ctx.headers.get("x-session-id") or ctx.user
        tried: list[Replica] = []
        strategy = st.strategy_for(model)
        loop = asyncio.get_running_loop()
        upstream_headers = {"content-type": "application/json", "x-request-id": ctx.request_id}
        for attempt in (0, 1):
            replica = strategy.choose(replicas, affinity, tried, ctx)
            if replica is None:
                if tried:
                    break
                raise GatewayError(
                    503,
                    f"No healthy replica is available for model '{model}'. Try again shortly.",
                    code="no_healthy_replica",
                    headers={"retry-after": "5"},
                )
            tried.append(replica)
            ctx.replica, ctx.attempts = replica, attempt + 1
            hdrs = upstream_headers
            if replica.api_key:
                hdrs = {**upstream_headers, "authorization": f"Bearer {replica.api_key}"}
            # A stream must start within first_byte_timeout_s (headers and first chunk).
            first_byte_by = (
                loop.time() + st.config.server.first_byte_timeout_s if ctx.stream else 0.0
            )
            # The slot is this attempt's: a retry, an error or a plain answer gives it back on
            # leaving the block; only a relayed stream takes it further.
            with ReplicaLease(replica, st.metrics) as lease:
                try:
                    async with asyncio.timeout_at(first_byte_by or None):
                        resp = await st.session.post(
                            replica.url + path, data=ctx.body, headers=hdrs, timeout=st.timeout
                        )
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                    st.replica_failed(replica, "connect")
                    if attempt == 0:
                        st.metrics.retry(model)
                        continue
                    raise GatewayError(
                        503,
                        f"Model '{model}' is unavailable: upstream connection failed "
                        f"({type(e).__name__}).",
                        code="upstream_unavailable",
                        headers={"retry-after": "5"},
                    ) from e
                except TimeoutError as e:
                    st.replica_failed(replica, "timeout")
                    if first_byte_by and attempt == 0 and len(replicas) > 1:
                        st.metrics.retry(model)  # nothing reached the client yet: try another
                        continue
                    raise GatewayError(
                        504, f"The upstream for model '{model}' timed out.", code="upstream_timeout"
                    ) from e
                if resp.status in _RETRYABLE_STATUS and attempt == 0 and len(replicas) > 1:
                    resp.release()
                    st.replica_failed(replica, f"status_{resp.status}")
                    st.metrics.retry(model)
                    continue
                if resp.status >= 500:
                    # A 500 is the engine failing one request (it did answer); only statuses
                    # that say the replica itself is unavailable count towards ejecting it.
                    st.replica_failed(replica, f"status_{resp.status}", eject=resp.status != 500)
                else:
                    replica.record_success()
                try:
                    return await self._respond(ctx, resp, lease, first_byte_by)
                except _UpstreamBroken as e:
                    # Nothing was sent to the client yet: another replica may answer properly.
                    if attempt == 0 and len(replicas) > 1:
                        st.metrics.retry(model)
                        continue
                    raise GatewayError(e.status, e.message, code=e.code) from e
        raise GatewayError(
            503,
            f"Every replica of model '{model}' failed. Try again shortly.",
            code="upstream_unavailable",
            headers={"retry-after": "5"},
        )

    async def _respond(
        self,
        ctx: RequestContext,
        resp: aiohttp.ClientResponse,
        lease: ReplicaLease,
        first_byte_by: float = 0.0,
    ) -> Response:
        ctype = resp.headers.get("content-type", "application/json")
        out_headers = {"x-request-id": ctx.request_id, **ctx.response_headers}
        ctx.status = resp.status
        if ctx.stream and resp.status == 200 and ctype.startswith("text/event-stream"):
            out_headers.update(_SSE_HEADERS)
            relay = _Relay(self, ctx, resp, lease.hand_over(), first_byte_by)
            return _RelayResponse(relay, media_type=ctype, headers=out_headers)
        replica = lease.replica
        try:
            payload = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            resp.close()
            self.state.replica_failed(replica, "read")
            raise _UpstreamBroken(
                502,
                f"The upstream for model '{ctx.model}' failed mid-response.",
                code="upstream_error",
            ) from e
        if (
            resp.status == 200
            and ctype.startswith("application/json")
            and not _looks_like_json(payload)
        ):
            self.state.replica_failed(replica, "garbage")
            raise _UpstreamBroken(
                502,
                f"The upstream for model '{ctx.model}' returned a malformed response.",
                code="upstream_error",
            )
        if resp.status == 200:
            ctx.usage = usage_from_body(payload)
            if ctx.route == "responses":
                ctx.extensions["response_id"] = response_id_from_body(payload)
            citations = ctx.extensions.get("citations")
            if citations is not None and ctype.startswith("application/json"):
                payload = _with_field(payload, "citations", citations)
        if ctx.capture_output:
            ctx.output = payload
        # The upstream is done: free its slot before the observers see the request as over.
        lease.release()
        self._finish(ctx)
        return Response(payload, status_code=resp.status, media_type=ctype, headers=out_headers)

    async def _serve_local(
        self, ctx: RequestContext, handler: LocalHandler, data: dict[str, Any]
    ) -> Response:
        try:
            resp = await handler(data)
        except ValueError as e:
            raise GatewayError(400, str(e), param="input") from e
        ctx.status = resp.status_code
        if resp.status_code == 200:
            ctx.usage = usage_from_body(bytes(resp.body))
        resp.headers["x-request-id"] = ctx.request_id
        resp.headers.update(ctx.response_headers)
        self._finish(ctx)
        return resp

    def _finish(self, ctx: RequestContext) -> None:
        st = self.state
        m = st.metrics
        m.observe_request(ctx.model, ctx.route, ctx.status, time.perf_counter() - ctx.t0)
        if ctx.ttft_s is not None:
            m.observe_ttft(ctx.model, ctx.route, ctx.ttft_s)
        if ctx.usage:
            m.observe_usage(ctx.model, ctx.usage)
        for fn in (*ctx.on_finish, *self.observers):
            try:
                fn(ctx)
            except Exception:  # an observer must never break a request
                log.exception("request observer failed")


class ReplicaLease:
    """The in-flight slot one request attempt holds on a replica (least-busy routing and the
    ``llmops_in_flight_requests`` gauge read it), taken on creation.

    Given back exactly once however the request ends: ``release`` is idempotent, leaving the
    ``with`` block releases unless a relayed stream took the lease over (``hand_over``), and
    the stream releases it when it settles.
    """

    __slots__ = ("_held", "_metrics", "_passed_on", "replica")

    def __init__(self, replica: Replica, metrics: GatewayMetrics) -> None:
        self.replica = replica
        self._metrics = metrics
        self._held = True
        self._passed_on = False
        replica.enter()
        metrics.set_in_flight(replica.model, replica.url, replica.in_flight)

    def __enter__(self) -> ReplicaLease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._passed_on:
            self.release()

    @property
    def held(self) -> bool:
        return self._held

    def hand_over(self) -> ReplicaLease:
        """The caller now owns releasing: the ``with`` block ends before the stream does."""
        self._passed_on = True
        return self

    def release(self) -> None:
        if self._held:
            self._held = False
            r = self.replica
            r.leave()
            self._metrics.set_in_flight(r.model, r.url, r.in_flight)


class _Relay:
    """One upstream SSE stream relayed to its client; it owns the replica lease from here on.

    Settling (slot, usage, metrics, observers) happens once per stream: just before its [DONE]
    is relayed, since the client's next request must find the slot, the token budget, metrics
    and the trace settled, else at whatever other end the stream meets.
    """

    __slots__ = (
        "_chunks",
        "_ctx",
        "_first_byte_by",
        "_lease",
        "_proxy",
        "_resp",
        "_scanner",
        "_settled",
        "body",
    )

    def __init__(
        self,
        proxy: Proxy,
        ctx: RequestContext,
        resp: aiohttp.ClientResponse,
        lease: ReplicaLease,
        first_byte_by: float,
    ) -> None:
        self._proxy = proxy
        self._ctx = ctx
        self._resp = resp
        self._lease = lease
        self._first_byte_by = first_byte_by
        self._scanner = stream_scanner(ctx)
        self._chunks: list[bytes] | None = [] if ctx.capture_output else None
        self._settled = False
        self.body = self._relay()

    def settle(self) -> None:
        if self._settled:
            return
        self._settled = True
        self._lease.release()
        ctx, scanner = self._ctx, self._scanner
        scanner.finish()
        ctx.usage = scanner.usage
        if ctx.usage is None:
            ctx.relayed_tokens = scanner.relayed_tokens()
        ctx.output_chunks = self._chunks
        self._proxy._finish(ctx)

    async def close(self) -> None:
        """End the relay once the response is over, however it ended.

        Starlette does not close a body it stopped iterating: a client gone before the first
        chunk leaves the generator unstarted (its ``finally`` never runs), one gone while a send
        waited leaves it suspended until it is garbage-collected. Closing it here settles both
        at once, as the client disconnect they are.
        """
        await self.body.aclose()
        if not self._settled:
            ctx = self._ctx
            ctx.status, ctx.error = 499, "client_disconnected"
            self._resp.close()
            self.settle()

    async def _relay(self) -> AsyncGenerator[bytes, None]:
        """Relay SSE chunks as they arrive; closing the upstream makes vLLM abort the request.

        The first chunk must arrive by ``first_byte_by``, each later one within
        ``chunk_timeout_s``: a silent upstream ends the stream with an error event.
        """
        ctx, resp, replica = self._ctx, self._resp, self._lease.replica
        st = self._proxy.state
        scanner, chunks = self._scanner, self._chunks
        first = True
        done = False  # [DONE] seen: the stream is settled
        tail = b""
        loop = asyncio.get_running_loop()
        chunk_timeout = st.config.server.chunk_timeout_s
        deadline = self._first_byte_by or loop.time() + st.config.server.first_byte_timeout_s
        read = resp.content.readany
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await read()
                except TimeoutError:
                    if done:  # only the end of the body is late: the client has it all
                        return
                    ctx.status, ctx.error = 504, "upstream_stream_timeout"
                    st.replica_failed(replica, "stream_timeout")
                    what = "its first chunk" if first else "the next chunk"
                    limit = st.config.server.first_byte_timeout_s if first else chunk_timeout
                    yield _sse_error(
                        f"The upstream for model '{ctx.model}' did not send {what} within "
                        f"{limit:g}s; the stream was ended.",
                        "upstream_timeout",
                    )
                    return
                if not chunk:
                    break
                if first:
                    ctx.ttft_s = time.perf_counter() - ctx.t0
                    first = False
                scanner.feed(chunk)
                if chunks is not None:
                    chunks.append(chunk)
                # A Responses stream has no [DONE]: its scanner sees the terminal event.
                if not done and (
                    scanner.ended or (tail + chunk[-16:]).rstrip().endswith(b"[DONE]")
                ):
                    done = True
                    self.settle()
                tail = chunk[-16:]
                yield chunk
                deadline = loop.time() + chunk_timeout
            if not done:
                # A stream that stops without its terminator was cut: say so, never truncate.
                ctx.status, ctx.error = 502, "upstream_truncated"
                st.replica_failed(replica, "truncated")
                yield _sse_error(
                    f"The upstream for model '{ctx.model}' ended the stream early.",
                    "upstream_error",
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            if done:
                return
            ctx.status, ctx.error = 502, "upstream_stream_error"
            st.replica_failed(replica, "stream")
            yield _sse_error(
                f"The upstream for model '{ctx.model}' failed mid-stream ({type(e).__name__}).",
                "upstream_error",
            )
        except (asyncio.CancelledError, GeneratorExit):
            if not done:
                ctx.status, ctx.error = 499, "client_disconnected"
            raise
        finally:
            resp.close()
            self.settle()


class _RelayResponse(StreamingResponse):
    """A relayed stream whose relay is closed when the response ends (see ``_Relay.close``)."""

    def __init__(self, relay: _Relay, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(relay.body, status_code=200, media_type=media_type, headers=headers)
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._relay.close()


class _UpstreamBroken(GatewayError):
    """The upstream answered unusably before anything reached the client (retryable)."""


def _looks_like_json(payload: bytes) -> bool:
    """A cheap shape check (object braces at both ends), not a full parse."""
    return bool(_JSON_HEAD.match(payload)) and bool(_JSON_TAIL.search(payload[-64:]))


def _with_field(payload: bytes, key: str, value: object) -> bytes:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    if not isinstance(obj, dict):
        return payload
    obj[key] = value
    return orjson.dumps(obj)


def _sse_error(message: str, code: str) -> bytes:
    return b"data: " + error_body(message, "api_error", code) + b"\n\n"


async def _read_body(request: Request, limit: int) -> bytes:
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            declared = int(cl)
        except ValueError:
            raise GatewayError(400, "Invalid Content-Length header.") from None
        if declared > limit:
            raise GatewayError(413, _too_large(limit), code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise GatewayError(413, _too_large(limit), code="request_too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise GatewayError(400, "The client disconnected while sending the body.") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes."
