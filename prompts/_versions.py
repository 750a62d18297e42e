"""One prompt version, and parsing a template file into one (with a cache keyed by content).

Shared by the registry's build steps and its lookups; kept apart so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from ._git import CommitInfo, stem
from ._template import PromptTemplate, canonical_version, load_yaml, template_from_data


class PromptVersion(BaseModel):
    """One version of one prompt: its template and the commit that introduced it.

    ``commit``/``author``/``date``/``message`` are None for a working-tree file git has not seen.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    commit: str | None = None
    author: str | None = None
    date: datetime | None = None
    message: str | None = None
    path: str | None = None
    text: str = ""
    template: PromptTemplate


# Parsed blobs by content key: (version, template, raw bytes) or why the blob is not a template.
ParseCache = dict[str, tuple[str, PromptTemplate, bytes] | str]


@dataclass(frozen=True, slots=True)
class CurrentFile:
    """A template file at the served ref (or in the working tree): its content key and bytes."""

    path: str
    key: str
    data: bytes
    info: CommitInfo | None


def parse_cached(
    key: str, data: bytes, path: str, cache: Mapping[str, Any], out: ParseCache
) -> Any:
    """Parse ``data`` unless ``cache`` has ``key``; record the outcome in ``out`` either way.

    Blobs never change, so a previous registry's parses are reused and only what this one still
    uses is carried into ``out`` (the next registry's cache does not grow without bound).
    """
    hit = cache.get(key)
    if hit is None:
        try:
            parsed = load_yaml(data, source=path)
            tpl = template_from_data(parsed, source=path, stem=stem(path))
            hit = (canonical_version(parsed), tpl, data)
        except ValueError as e:
            hit = str(e)
    out[key] = hit
    return hit


def version_of(
    name: str,
    version: str,
    tpl: PromptTemplate,
    path: str,
    data: bytes,
    info: CommitInfo | None,
) -> PromptVersion:
    """A :class:`PromptVersion` from a parsed file and the commit that last changed it."""
    return PromptVersion(
        name=name,
        version=version,
        commit=(info.commit or None) if info else None,
        author=(info.author or None) if info else None,
        date=info.date if info else None,
        message=info.message if info else None,
        path=path,
        text=data.decode("utf-8", errors="replace"),
        template=tpl,
    )
