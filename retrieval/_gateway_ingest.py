"""``llmops ingest`` through a running gateway: the files go up with OpenAI's files API and are
attached as one file batch to the vector store of the collection's name, which the gateway
ingests while it keeps serving. Each file carries its original path and content digest as
attributes, so a re-run uploads only what changed and detaches the versions it replaces."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._config import ChunkingConfig
from ._errors import RetrievalError
from ._ingest import scan


class GatewayIngestError(RetrievalError):
    pass


@dataclass(slots=True)
class GatewaySummary:
    collection: str
    uploaded: int = 0
    unchanged: int = 0
    replaced: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        out = (
            f"{self.collection}: {self.uploaded} files ingested by the gateway "
            f"({self.replaced} replacing older versions), {self.unchanged} unchanged"
        )
        if self.failed:
            out += f", {len(self.failed)} failed: " + "; ".join(f"{p}: {e}" for p, e in self.failed)
        if self.skipped:
            out += f", {len(self.skipped)} skipped"
        return out


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def static_chunking(chunk_tokens: int | None, overlap_tokens: int | None) -> dict[str, Any] | None:
    """The CLI's chunking options as OpenAI's static strategy (100-4096 tokens, overlap at most
    half); None when neither is given."""
    if chunk_tokens is None and overlap_tokens is None:
        return None
    if chunk_tokens is None:
        raise GatewayIngestError("through a gateway, --overlap-tokens needs --chunk-tokens")
    if not 100 <= chunk_tokens <= 4096:
        raise GatewayIngestError(
            "through a gateway, --chunk-tokens must lie in 100-4096 (the vector store API's "
            "bounds); use --direct for other sizes"
        )
    if overlap_tokens is None:
        overlap_tokens = ChunkingConfig.model_fields["overlap_tokens"].default
    overlap = min(overlap_tokens, chunk_tokens // 2)
    sizes = {"max_chunk_size_tokens": chunk_tokens, "chunk_overlap_tokens": overlap}
    return {"type": "static", "static": sizes}


def _same_cut(f: Any, chunking: dict[str, Any] | None) -> bool:
    if chunking is None:
        return True  # no cut asked for: keep whatever the file was ingested with
    got = getattr(f, "chunking_strategy", None)
    return got is not None and got.model_dump(exclude_none=True) == chunking


def ingest_through_gateway(
    url: str, api_key: str | None, paths: Sequence[str | Path], collection: str, *,
    console: Any = None, poll_interval_ms: int = 500,
    chunking: dict[str, Any] | None = None,
) -> GatewaySummary:  # fmt: skip
    """``chunking`` is OpenAI's static ``chunking_strategy`` for the files sent; a file whose
    content is unchanged but was cut otherwise is sent again."""
    import openai

    from common import openai_base_url

    client = openai.OpenAI(base_url=openai_base_url(url), api_key=api_key or "unset",
                           max_retries=2)  # fmt: skip
    files, skipped, _ = scan(paths)
    summary = GatewaySummary(collection, skipped=skipped)
    try:
        try:
            client.vector_stores.retrieve(collection)
        except openai.NotFoundError:
            made = client.vector_stores.create(name=collection)
            if made.id != collection:
                raise GatewayIngestError(
                    f"the gateway named the new vector store {made.id!r}, not {collection!r}"
                ) from None
        current: dict[str, list[Any]] = {}
        for f in client.vector_stores.files.list(vector_store_id=collection, limit=100):
            origin = (f.attributes or {}).get("origin")
            if origin is not None:
                current.setdefault(str(origin), []).append(f)
        pending: list[tuple[str, Path, str]] = []  # (file id, path, digest)
        old_ids: list[str] = []
        for path, _root in files:
            digest = _digest(path)
            before = current.get(str(path), [])
            if any((f.attributes or {}).get("sha256") == digest and f.status == "completed"
                   and _same_cut(f, chunking) for f in before):  # fmt: skip
                summary.unchanged += 1
                continue
            with path.open("rb") as fh:
                up = client.files.create(file=(path.name, fh), purpose="assistants")
            pending.append((up.id, path, digest))
            old_ids += [f.id for f in before]
            summary.replaced += bool(before)
        if pending and console is not None:
            console.print(f"uploaded {len(pending)} files; the gateway is ingesting them")
        for fid, path, digest in pending:
            extra: dict[str, Any] = {"chunking_strategy": chunking} if chunking else {}
            client.vector_stores.files.create(
                vector_store_id=collection, file_id=fid,
                attributes={"origin": str(path), "sha256": digest}, **extra,
            )  # fmt: skip
        for fid, path, _ in pending:
            done = client.vector_stores.files.poll(
                fid, vector_store_id=collection, poll_interval_ms=poll_interval_ms
            )
            if done.status == "completed":
                summary.uploaded += 1
            else:
                summary.failed.append(
                    (str(path), done.last_error.message if done.last_error else done.status)
                )
        for fid in old_ids:  # older versions of files that now have a new one
            client.vector_stores.files.delete(fid, vector_store_id=collection)
    except openai.APIStatusError as exc:
        hint = " (pass --api-key or set LLMOPS_API_KEY)" if exc.status_code == 401 else ""
        raise GatewayIngestError(
            f"the gateway at {url} answered {exc.status_code}: {exc.message}{hint}"
        ) from None
    except openai.APIConnectionError as exc:
        raise GatewayIngestError(f"cannot reach the gateway at {url}: {exc}") from None
    return summary
