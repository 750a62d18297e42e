"""The data path: edge checks -> request fields -> resolution -> replica -> forward -> account.

Bodies stay bytes unless resolution changes them; responses are relayed as received.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from gateway.errors import GatewayError, error_body, error_response
from gateway.request_model import parse_body, routing_fields
from gateway.state import GatewayState
from gateway.usage import StreamUsageScanner, usage_from_body

# A resolver rewrites the parsed body (prompt templates, retrieval) and returns extra
# response headers plus an optional extension object merged into JSON responses.
Resolver = Callable[[dict[str, Any], str], Awaitable[tuple[dict[str, Any], dict[str, str]]]]

_RETRYABLE_STATUS = frozenset({502, 503})
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class Proxy:
    def __init__(self, state: GatewayState, resolvers: list[Resolver] | None = None) -> None:
        self.state = state
        self.resolvers = resolvers or []

    async def handle(self, request: Request, route: str, path: str) -> Response:
        st = self.state
        t0 = time.perf_counter()
        headers = request.headers
        rid = headers.get("x-request-id") or uuid.uuid4().hex
        model = "-"
        try:
            principal = st.keys.authenticate(headers.get("authorization"))
            body = await _read_body(request, st.config.server.max_body_bytes)
            data = parse_body(body)
            extra_headers: dict[str, str] = {}
            changed = False
            if route != "embeddings" and isinstance(data.get("prompt"), dict):
                for resolve in self.resolvers:
                    data, hdrs = await resolve(data, route)
                    extra_headers.update(hdrs)
                changed = True
            fields = routing_fields(route, data)
            pool = st.pool_for(fields.model)
            model = pool.name
            if principal is not None and not principal.allows(model):
                raise GatewayError(
                    403,
                    f"This API key is not allowed to use the model '{fields.model}'.",
                    code="model_not_allowed",
                    param="model",
                )
            if changed or fields.model != pool.upstream_name:
                data["model"] = pool.upstream_name
                body = orjson.dumps(data)
            affinity = None
            if st.config.server.affinity:
                affinity = headers.get("x-session-id") or fields.user
            return await self._forward(
                pool.name, route, path, body, bool(fields.stream), affinity, rid, extra_headers, t0
            )
        except GatewayError as e:
            st.metrics.observe_request(model, route, e.status, time.perf_counter() - t0)
            return error_response(e, rid)

    async def _forward(
        self,
        model: str,
        route: str,
        path: str,
        body: bytes,
        stream: bool,
        affinity: str | None,
        rid: str,
        extra_headers: dict[str, str],
        t0: float,
    ) -> Response:
        st = self.state
        pool = st.pools[model]
        tried: list[Any] = []
        upstream_headers = {"content-type": "application/json", "x-request-id": rid}
        for attempt in (0, 1):
            replica = st.strategy.choose(pool.replicas, affinity, tried)
            if replica is None:
                if attempt == 1 and tried:
                    break
                raise GatewayError(
                    503,
                    f"No healthy replica is available for model '{model}'. Try again shortly.",
                    code="no_healthy_replica",
                    headers={"retry-after": "5"},
                )
            tried.append(replica)
            hdrs = upstream_headers
            if replica.api_key:
                hdrs = {**upstream_headers, "authorization": f"Bearer {replica.api_key}"}
            replica.in_flight += 1
            st.metrics.set_in_flight(model, replica.url, replica.in_flight)
            try:
                resp = await st.session.post(
                    replica.url + path, data=body, headers=hdrs, timeout=st.timeout
                )
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                self._release(model, replica)
                st.replica_failed(replica, "connect" if attempt == 0 else "connect_retry")
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
                self._release(model, replica)
                st.replica_failed(replica, "timeout")
                raise GatewayError(
                    504, f"The upstream for model '{model}' timed out.", code="upstream_timeout"
                ) from e
            if resp.status in _RETRYABLE_STATUS and attempt == 0 and len(pool.replicas) > 1:
                resp.release()
                self._release(model, replica)
                st.replica_failed(replica, f"status_{resp.status}")
                st.metrics.retry(model)
                continue
            if resp.status >= 500:
                st.replica_failed(replica, f"status_{resp.status}")
            else:
                replica.record_success()
            ctype = resp.headers.get("content-type", "application/json")
            out_headers = {"x-request-id": rid, **extra_headers}
            if stream and resp.status == 200 and ctype.startswith("text/event-stream"):
                out_headers.update(_SSE_HEADERS)
                return StreamingResponse(
                    self._relay(resp, model, route, replica, t0),
                    status_code=200,
                    media_type=ctype,
                    headers=out_headers,
                )
            try:
                payload = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as e:
                resp.close()
                st.replica_failed(replica, "read")
                raise GatewayError(
                    502, f"The upstream for model '{model}' failed mid-response.",
                    code="upstream_error",
                ) from e  # fmt: skip
            finally:
                self._release(model, replica)
            if resp.status == 200:
                usage = usage_from_body(payload)
                if usage:
                    st.metrics.observe_usage(model, usage)
            st.metrics.observe_request(model, route, resp.status, time.perf_counter() - t0)
            return Response(payload, status_code=resp.status, media_type=ctype, headers=out_headers)
        raise GatewayError(
            503,
            f"Every replica of model '{model}' failed. Try again shortly.",
            code="upstream_unavailable",
            headers={"retry-after": "5"},
        )

    async def _relay(
        self, resp: aiohttp.ClientResponse, model: str, route: str, replica: Any, t0: float
    ) -> AsyncIterator[bytes]:
        """Relay SSE chunks as they arrive; closing the upstream cancels it in vLLM."""
        st = self.state
        scanner = StreamUsageScanner()
        first = True
        done = False
        status = 200
        try:
            async for chunk in resp.content.iter_any():
                if first:
                    st.metrics.observe_ttft(model, route, time.perf_counter() - t0)
                    first = False
                scanner.feed(chunk)
                done = done or b"[DONE]" in chunk
                yield chunk
            scanner.finish()
            if not done:
                # A stream that stops without its terminator was cut: say so, never truncate.
                status = 502
                st.replica_failed(replica, "truncated")
                yield _sse_error(
                    f"The upstream for model '{model}' ended the stream early.", "upstream_error"
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            status = 502
            st.replica_failed(replica, "stream")
            yield _sse_error(
                f"The upstream for model '{model}' failed mid-stream ({type(e).__name__}).",
                "upstream_error",
            )
        except asyncio.CancelledError:
            status = 499  # client went away; closing resp aborts the upstream request
            raise
        finally:
            resp.close()
            self._release(model, replica)
            if scanner.usage:
                st.metrics.observe_usage(model, scanner.usage)
            st.metrics.observe_request(model, route, status, time.perf_counter() - t0)

    def _release(self, model: str, replica: Any) -> None:
        replica.in_flight -= 1
        self.state.metrics.set_in_flight(model, replica.url, replica.in_flight)


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
