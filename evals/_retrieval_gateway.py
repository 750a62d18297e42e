"""The versions of a collection a running gateway serves, for ``llmops retrieval rebuild``:
the gateway builds the new version in its own process (its admin API), both versions are
searched through OpenAI's vector store search as clients search them, and the switch, drop
and prune are the gateway's too. A search returns at most 50 results there, so the gate reads
at most the first 50 chunks per query."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from evals._retrieval_rebuild import Built
from retrieval import RetrievalError

MAX_RESULTS = 50  # OpenAI's bound on max_num_results


class GatewayVersionError(RetrievalError):
    pass


class GatewayVersions:
    def __init__(
        self, url: str, alias: str, *, api_key: str | None, admin_key: str,
        chunking: dict[str, int], depth: int = 100, id_field: str | None = None,
        poll_s: float = 0.5, timeout_s: float = 120.0,
    ) -> None:  # fmt: skip
        from common import server_root

        self.url, self.alias, self.chunking = server_root(url), alias, chunking
        self.depth = min(depth, MAX_RESULTS)
        self.id_field, self.poll_s = id_field, poll_s
        self._admin = httpx.Client(base_url=self.url, timeout=timeout_s,
                                   headers={"authorization": f"Bearer {admin_key}"})  # fmt: skip
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._search = httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self._admin.close()
        self._search.close()

    def _call(self, client: httpx.Client, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            r = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise GatewayVersionError(f"cannot reach the gateway at {self.url}: {exc}") from None
        _raise_for(self.url, r)
        out: dict[str, Any] = r.json()
        return out

    def _versions(self, path: str = "") -> str:
        return f"/admin/collections/{self.alias}/versions{path}"

    def build(self) -> Built:
        rec = self._call(self._admin, "POST", self._versions(), json=self.chunking)
        while rec["status"] == "in_progress":
            time.sleep(self.poll_s)
            rec = self._call(self._admin, "GET", self._versions(f"/{rec['name']}"))
        if rec["status"] != "completed":
            err = rec.get("error") or {}
            raise GatewayVersionError(
                f"the gateway could not build {rec['name']}: {err.get('message', rec['status'])}"
            )
        return Built(rec["baseline"], rec["name"], int(rec["files"]), int(rec["chunks"]),
                     list(rec["missing_sources"]))  # fmt: skip

    def ranked(self, collection: str, query: str) -> list[str]:
        body = {"query": query, "max_num_results": self.depth}
        page = self._call(self._search, "POST", f"/v1/vector_stores/{collection}/search",
                          json=body)  # fmt: skip
        return [self._doc(hit) for hit in page["data"]]

    def _doc(self, hit: dict[str, Any]) -> str:
        if self.id_field:
            return str((hit.get("attributes") or {}).get(self.id_field, ""))
        return Path(str(hit["filename"])).stem

    def switch(self, name: str) -> float:
        out = self._call(self._admin, "POST", f"/admin/collections/{self.alias}/switch",
                         json={"collection": name})  # fmt: skip
        return float(out["switch_ms"])

    def drop(self, name: str) -> None:
        self._call(self._admin, "DELETE", self._versions(f"/{name}"))

    def prune(self, keep: int) -> list[str]:
        out = self._call(self._admin, "POST", f"/admin/collections/{self.alias}/prune",
                         json={"keep": keep})  # fmt: skip
        return list(out["dropped"])


def _raise_for(url: str, r: httpx.Response) -> None:
    """The gateway's OpenAI-shaped error as a message, with a hint for the usual causes."""
    if r.status_code < 400:
        return
    from common import error_of

    msg, code = error_of(r)
    hint = ""
    if r.status_code == 401:
        hint = " (pass --admin-key / LLMOPS_ADMIN_KEY and --api-key / LLMOPS_API_KEY)"
    elif code == "unknown_url":
        hint = " (the gateway needs retrieval on and an admin key, auth.admin_sha256)"
    raise GatewayVersionError(f"the gateway at {url} answered {r.status_code}: {msg}{hint}")


def download_snapshot(url: str, admin_key: str, name: str, out: Path) -> tuple[str, Path]:
    """Have the gateway snapshot ``name`` (its serving version, for an alias) and write the
    file to ``out``: (the collection snapshotted, the path)."""
    from common import server_root

    root = server_root(url)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    headers = {"authorization": f"Bearer {admin_key}"}
    try:
        with httpx.stream("POST", f"{root}/admin/collections/{name}/snapshot", headers=headers,
                          timeout=600) as r:  # fmt: skip
            if r.status_code >= 400:
                r.read()
                _raise_for(root, r)
            real = r.headers.get("x-llmops-collection", name)
            with part.open("wb") as fh:
                for block in r.iter_bytes(1 << 20):
                    fh.write(block)
    except httpx.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise GatewayVersionError(f"cannot reach the gateway at {root}: {exc}") from None
    part.replace(out)
    return real, out
