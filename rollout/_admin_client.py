"""The gateway's variant admin routes, as promotion calls them (``/admin/variants``)."""

from __future__ import annotations

from typing import Any

import httpx

from common import error_of, server_root


class AdminError(RuntimeError):
    """The gateway refused or could not be reached; the message says which and why."""


class VariantAdmin:
    def __init__(self, gateway_url: str, admin_key: str, timeout_s: float = 10.0) -> None:
        self.base = server_root(gateway_url)
        self._client = httpx.Client(
            headers={"authorization": f"Bearer {admin_key}"}, timeout=timeout_s
        )

    def _call(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        try:
            r = self._client.request(method, self.base + path, json=json)
        except httpx.HTTPError as e:
            raise AdminError(f"cannot reach the gateway at {self.base}: {e}") from None
        if r.status_code >= 400:
            msg, _ = error_of(r, limit=200)
            raise AdminError(f"{method} {path}: {r.status_code}: {msg}")
        data: dict[str, Any] = r.json()
        return data

    def status(self, alias: str) -> dict[str, Any]:
        return self._call("GET", f"/admin/variants/{alias}")

    def set_weights(self, alias: str, weights: dict[str, float], by: str) -> dict[str, Any]:
        return self._call("PUT", f"/admin/variants/{alias}", {"weights": weights, "by": by})

    def close(self) -> None:
        self._client.close()
