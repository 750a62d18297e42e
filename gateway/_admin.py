"""Admin routes behind a separate admin key: reload the config, list, add and revoke keys.

The admin key is configured as a digest (``auth.admin_sha256``) and compared in constant
time; no client key opens these routes. Without an admin digest the routes answer 404.
Keys added here are returned once and kept only as digests, in this gateway process: with
several replicas, add keys to the config file and ``reload`` each replica instead.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from gateway._config import ApiKeyConfig, hash_key, load_config
from gateway._errors import GatewayError
from gateway._keys import KeyStore, Principal
from gateway._limits_config import LimitSpec

if TYPE_CHECKING:
    from gateway._app import GatewayApp

log = logging.getLogger("llmops.gateway.admin")
_JSON = "application/json"


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
    team: str | None = Field(None, min_length=1, max_length=128)
    models: list[str] | None = Field(None, max_length=1000)
    limits: LimitSpec | None = None


def _describe(p: Principal) -> dict[str, Any]:
    return {
        "name": p.name,
        "team": p.team,
        "models": sorted(p.models) if p.models is not None else None,
        "limits": p.limits.model_dump(exclude_none=True) if p.limits is not None else None,
        "origin": p.origin,
    }


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=_JSON)


def check_admin(keys: KeyStore, request: Request) -> None:
    """404 while admin routes are off (no admin digest), 401 without the admin key."""
    if not keys.admin_enabled:
        raise GatewayError(
            404, f"Unknown request URL: {request.method} {request.url.path}.", code="unknown_url"
        )
    if not keys.is_admin(request.headers.get("authorization")):
        raise GatewayError(401, "This route needs the admin key.", code="invalid_admin_key")


def _validation_message(e: ValidationError) -> str:
    # Without input values: a config may hold upstream api keys.
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
        for err in e.errors(include_input=False, include_url=False)[:10]
    )


def admin_plugin(gw: GatewayApp) -> None:
    state = gw.state

    def require_admin(request: Request) -> None:
        check_admin(state.keys, request)

    async def list_keys(request: Request) -> Response:
        require_admin(request)
        return json_response(
            {"object": "list", "data": [_describe(p) for p in state.keys.principals()]}
        )

    async def add_key(body: NewKey, request: Request) -> Response:
        require_admin(request)
        key = "sk-llmops-" + secrets.token_urlsafe(32)
        cfg = ApiKeyConfig(
            name=body.name, sha256=hash_key(key), models=body.models, team=body.team,
            limits=body.limits,
        )  # fmt: skip
        p = state.keys.add(cfg, state.canonical)
        log.info("admin: key %r added", body.name)
        return json_response({**_describe(p), "key": key}, 201)

    async def revoke_key(name: str, request: Request) -> Response:
        require_admin(request)
        if not state.keys.revoke(name):
            raise GatewayError(404, f"No key named '{name}'.", code="key_not_found")
        log.info("admin: key %r revoked", name)
        return json_response({"name": name, "revoked": True})

    async def reload(request: Request) -> Response:
        require_admin(request)
        path = state.config.source_path
        if path is None:
            raise GatewayError(409, "The gateway was not started from a config file.")
        try:
            new = load_config(path)
        except ValidationError as e:
            raise GatewayError(400, f"Invalid config: {_validation_message(e)}") from None
        except (OSError, ValueError) as e:
            raise GatewayError(400, f"Cannot read the config: {type(e).__name__}") from None
        changes = state.apply_config(new)
        gw.config = new
        log.info("admin: config reloaded from %s", path)
        return json_response({"reloaded": True, **changes})

    app = gw.app
    tags: list[str | Any] = ["admin"]
    app.add_api_route("/admin/keys", list_keys, methods=["GET"], response_class=Response,
                      tags=tags)  # fmt: skip
    app.add_api_route("/admin/keys", add_key, methods=["POST"], response_class=Response,
                      status_code=201, tags=tags)  # fmt: skip
    app.add_api_route("/admin/keys/{name}", revoke_key, methods=["DELETE"],
                      response_class=Response, tags=tags)  # fmt: skip
    app.add_api_route("/admin/reload", reload, methods=["POST"], response_class=Response,
                      tags=tags)  # fmt: skip
