"""Wires spend accounting into the gateway: the admission hook, the ledger's flush task, and
``GET /admin/spend`` (what ``llmops spend report`` reads)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from common import duration_s
from gateway._admin import check_admin, json_response
from gateway._errors import GatewayError
from gateway._replicas import Replica
from gateway.spend._accounting import SpendAccounting
from gateway.spend._ledger import DIMENSIONS, group, hour_of

if TYPE_CHECKING:
    from gateway._app import GatewayApp


def install(gw: GatewayApp) -> SpendAccounting | None:
    cfg = gw.config
    if not cfg.spend.enabled or not cfg.pricing():
        return None
    state = gw.state

    def replicas() -> list[Replica]:
        return [r for pool in state.pools.values() for r in pool.replicas]

    acc = SpendAccounting(cfg, state.metrics.registry, replicas)
    gw.proxy.admissions.append(acc.admit)
    gw.startup.append(acc.start)
    gw.shutdown.append(acc.stop)
    state.reload_hooks.append(acc.reconfigure)

    async def spend(request: Request) -> Response:
        check_admin(state.keys, request)
        q = request.query_params
        by = q.get("by", "key")
        if by not in DIMENSIONS:
            raise GatewayError(400, f"by must be one of {', '.join(DIMENSIONS)}, not {by!r}.",
                               code="invalid_request", param="by")  # fmt: skip
        try:
            since_s = duration_s(q.get("since", "7d"))
        except ValueError as e:
            raise GatewayError(400, str(e), code="invalid_request", param="since") from None
        start = time.time() - since_s
        rows = group(await acc.read(hour_of(start)), by, hour_of(start))
        data: list[dict[str, Any]] = [
            {by: name, **{k: round(v, 9) if k == "usd" else int(v) for k, v in r.items()}}
            for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["usd"])
        ]
        return json_response({
            "object": "spend.report", "by": by, "since": round(start, 3),
            "store": cfg.limits.backend, "data": data,
            "total_usd": round(sum(r["usd"] for r in rows.values()), 9),
        })  # fmt: skip

    gw.app.add_api_route("/admin/spend", spend, methods=["GET"], response_class=Response,
                         tags=["admin"])  # fmt: skip
    return acc
