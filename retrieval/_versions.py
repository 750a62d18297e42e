"""Versioned collections behind aliases: ``kb`` names ``kb@v3``, a rebuild writes ``kb@v4``
beside it, and the alias moves in one atomic step (a Qdrant alias operation on the server, a
replaced pointer file on the embedded engine). Old versions stay for ``rollback``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ._config import validate_alias_name
from ._errors import CollectionNotFoundError, RetrievalError
from ._store import Store

_VERSION = re.compile(r"^(?P<base>.+)@v(?P<n>[0-9]+)$")


def parse_version(name: str) -> tuple[str, int] | None:
    """``('kb', 3)`` for ``kb@v3``; None for a name without a version."""
    m = _VERSION.match(name)
    return (m["base"], int(m["n"])) if m else None


def version_name(base: str, n: int) -> str:
    return f"{validate_alias_name(base)}@v{n}"


@dataclass(frozen=True, slots=True)
class Versions:
    alias: str
    serving: str | None  # the collection the alias names now (None: no alias yet)
    plain: bool  # a collection of the alias's own name exists (from before versioning)
    versions: list[str]  # NAME@vN, oldest first

    @property
    def current(self) -> str | None:
        """What the alias's name serves now: the version it names, else a plain collection of
        that name (from before versioning), else None."""
        return self.serving or (self.alias if self.plain else None)

    def require_current(self) -> str:
        """``current``, or the error a rebuild of nothing gets."""
        if self.current is None:
            raise CollectionNotFoundError(
                f"collection {self.alias!r} does not exist: ingest it first"
            )
        return self.current

    def next_name(self) -> str:
        last = parse_version(self.versions[-1])[1] if self.versions else 0  # type: ignore[index]
        return version_name(self.alias, last + 1)

    def previous(self) -> str | None:
        """The newest version older than the one serving."""
        if self.serving is None or self.serving not in self.versions:
            return None
        i = self.versions.index(self.serving)
        return self.versions[i - 1] if i > 0 else None


def collection_versions(store: Store, alias: str) -> Versions:
    validate_alias_name(alias)
    table = store.aliases()
    names = store.list_collections()
    found = sorted(
        (v[1], n) for n in names if (v := parse_version(n)) is not None and v[0] == alias
    )
    return Versions(alias, table.get(alias), alias in names, [n for _, n in found])


def switch_alias(store: Store, alias: str, target: str) -> float:
    """Point ``alias`` at ``target``; the seconds the switch took.

    A plain collection of the alias's own name (made before versioning) cannot stand beside
    the alias: it is dropped first, so only this first switch leaves a moment in which the
    name resolves to nothing. Later switches are one atomic alias operation."""
    if store.collection_meta(target) is None:
        raise CollectionNotFoundError(f"collection {target!r} does not exist")
    t0 = time.perf_counter()
    if store.resolve(alias) == alias and store.collection_meta(alias) is not None:
        store.drop_collection(alias)
    store.set_alias(alias, target)
    return time.perf_counter() - t0


def rollback_alias(store: Store, alias: str) -> tuple[str, str]:
    """Move the alias back to the version before the one serving: (from, to)."""
    v = collection_versions(store, alias)
    if v.serving is None:
        raise CollectionNotFoundError(f"alias {alias!r} does not exist")
    prev = v.previous()
    if prev is None:
        raise RetrievalError(
            f"{alias!r} serves {v.serving}, and no older version of it is kept to roll back to"
        )
    store.set_alias(alias, prev)
    return v.serving, prev


def prune_versions(store: Store, alias: str, keep: int) -> list[str]:
    """Drop the versions older than the ``keep`` newest ones before the serving version (and
    never the serving one); the names dropped."""
    v = collection_versions(store, alias)
    if v.serving is None or v.serving not in v.versions:
        return []
    older = v.versions[: v.versions.index(v.serving)]
    dropped = older[: max(0, len(older) - keep)]
    for name in dropped:
        store.drop_collection(name)
    return dropped
