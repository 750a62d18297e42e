"""Build the next version of a collection beside the one an alias serves: ``kb@v4`` is
ingested from the source files of ``kb@v3`` with another chunking or embedder and inherits its
search settings. Judging it and switching the alias are the caller's (the evals' gate); the
gateway runs this same build for a store it serves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ._errors import RetrievalError
from ._ingest import IngestProgress, IngestReport, same_source
from ._search import Retriever
from ._versions import collection_versions

_CARRIED = ("mode", "rrf_k", "weights", "alpha")  # the search settings a new version inherits


class RebuildError(RetrievalError):
    """Nothing to rebuild from (no collection, no source file left)."""


@dataclass(slots=True)
class BuiltVersion:
    alias: str
    baseline: str  # the version the alias served when the build began
    name: str  # the new version
    report: IngestReport
    missing: list[str]  # sources of the baseline gone from disk, so not in the new version

    @property
    def files(self) -> int:
        return len(self.report.added) + len(self.report.updated)


def build_next_version(
    alias: str,
    *,
    serving: Retriever,
    candidate: Retriever,
    attributes: Mapping[str, Mapping[str, object]] | None = None,
    progress: IngestProgress | None = None,
) -> BuiltVersion:
    """Ingest ``alias``'s sources into its next version with ``candidate``'s config.

    Both retrievers share one store; ``serving`` is the one whose embedder built the
    baseline. ``attributes`` gives per source the attributes its chunks carried (files
    attached through the vector store API), so searches filter the new version the same way.
    On any failure the half-built version is dropped and the error raised."""
    store = serving.store
    versions = collection_versions(store, alias)
    baseline = versions.require_current()
    old_meta = serving.collection_meta(baseline)
    sources = sorted(store.sources(baseline))
    present = [s for s in sources if Path(s).is_file()]
    missing = [s for s in sources if s not in present]
    if not present:
        raise RebuildError(
            f"none of the {len(sources)} source files of {baseline!r} exists any more: "
            "nothing to rebuild from"
        )
    name = versions.next_name()
    attributes = attributes or {}
    plain = [s for s in present if s not in attributes]
    try:
        report = IngestReport(name)
        if plain:
            _add(report, candidate.ingest(plain, name, progress=progress))
        for source in (s for s in present if s in attributes):
            _add(report, candidate.ingest([source], name, attributes=attributes[source]))
        carried = {k: getattr(old_meta, k) for k in _CARRIED}
        carried["chunking"] = candidate.config.chunking
        store.update_meta(name, candidate.collection_meta(name).model_copy(update=carried))
        candidate.forget_meta(name)
        store.optimize(name)
    except BaseException:
        _drop_quietly(store, name)
        raise
    return BuiltVersion(alias, baseline, name, report, missing)


def catch_up(
    retriever: Retriever,
    *,
    baseline: str,
    name: str,
    attributes: Mapping[str, Mapping[str, object]] | None = None,
    remove: bool = True,
) -> tuple[list[str], list[str]]:
    """Bring a built version level with what its baseline gained or lost since the build
    began (files attached or detached meanwhile): (sources added, sources removed). Run before
    the switch, and after it with ``remove=False`` (the new version then takes writes of its
    own), so a write that resolved the old version just before the switch is not lost."""
    store = retriever.store
    old, new = set(store.sources(baseline)), set(store.sources(name))
    added = sorted(s for s in old - new if Path(s).is_file())
    chunking = retriever.collection_meta(name).chunking  # the version's own, if rebuilt
    for source in added:
        retriever.ingest([source], name, attributes=(attributes or {}).get(source),
                         chunking=chunking)  # fmt: skip
    removed = sorted(new - old) if remove else []
    for source in removed:
        store.delete(name, same_source(source))
    return added, removed


def _add(total: IngestReport, part: IngestReport) -> None:
    for f in fields(IngestReport):
        if f.name == "collection":
            continue
        value = getattr(part, f.name)
        if isinstance(value, list):
            getattr(total, f.name).extend(value)
        else:
            setattr(total, f.name, getattr(total, f.name) + value)


def _drop_quietly(store: Any, name: str) -> None:
    """Drop a candidate after a failure; the original error is the one to report."""
    try:
        if store.collection_meta(name) is not None:
            store.drop_collection(name)
    except Exception:
        pass
