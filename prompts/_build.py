"""Building a registry's contents from what ``_sources`` read: one step per concern.

1. :func:`_parse_current`: parse the files at the served ref (names must be unique).
2. :func:`_history_of` / :func:`_with_production`: each prompt's versions, newest first, and the
   one that is served.
3. :func:`_load_labels` / :func:`_resolve_labels`: pin each label to a version.
4. :func:`_cumulative_splits`: turn canary weights into traffic buckets.

Every error is collected before anything is raised, so a broken reload names all the bad files
at once; nothing is swapped in unless every step succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ._errors import HistoryUnavailable, InvalidTemplate, PromptError
from ._git import FileChange, is_yaml, stem
from ._labels import LabelsFile, LabelTarget
from ._sources import Sources
from ._template import PromptTemplate, load_yaml
from ._versions import CurrentFile, ParseCache, PromptVersion, parse_cached, version_of

log = logging.getLogger("prompts.registry")

Labels = dict[str, dict[str, PromptVersion | PromptError]]
Splits = dict[str, tuple[tuple[float, PromptVersion], ...]]


@dataclass(frozen=True, slots=True)
class Built:
    """What a :class:`~prompts._registry.PromptRegistry` is made of, all checked."""

    current: dict[str, PromptVersion]
    history: dict[str, tuple[PromptVersion, ...]]
    labels: Labels
    splits: Splits
    warnings: tuple[str, ...]
    cache: ParseCache


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A current file that parsed: its version id and template (``file.data`` from the cache)."""

    version: str
    template: PromptTemplate
    file: CurrentFile


def build(src: Sources) -> Built:
    """Parse, resolve and check everything; raise :class:`InvalidTemplate` with every error.

    History problems (a missing blob, an old version that no longer parses) are warnings only:
    they make that old version unavailable, never the served one.
    """
    cache: ParseCache = {}
    errors: dict[str, str] = {}
    warnings: list[str] = []
    parsed = _parse_current(src, cache, errors)
    by_name: dict[str, list[FileChange]] = {}
    for ch in src.changes:
        by_name.setdefault(stem(ch.path), []).append(ch)
    history: dict[str, tuple[PromptVersion, ...]] = {}
    current: dict[str, PromptVersion] = {}
    for name, p in parsed.items():
        entries = _history_of(name, by_name.get(name, []), src, cache, warnings)
        current[name], history[name] = _with_production(name, p, entries, src)
    labels: Labels = {}
    weighted: dict[str, list[tuple[float, PromptVersion]]] = {}
    labels_file = _load_labels(src, errors)
    if labels_file is not None:
        labels, weighted = _resolve_labels(src, labels_file, parsed, history, current, errors)
    if errors:
        raise InvalidTemplate(errors)
    for warning in warnings:
        log.debug("prompt history: %s", warning)
    return Built(
        current=current,
        history=history,
        labels=labels,
        splits=_cumulative_splits(weighted),
        warnings=tuple(warnings),
        cache=cache,
    )


def _parse_current(src: Sources, cache: ParseCache, errors: dict[str, str]) -> dict[str, _Parsed]:
    """The served files by prompt name; a bad or duplicate file is an error, not skipped, so a
    typo never silently serves an older version."""
    parsed: dict[str, _Parsed] = {}
    for path, c in src.current.items():
        name = stem(path)
        if name == stem(src.labels_path):
            errors[path] = f"the name {name!r} is reserved for the labels file"
            continue
        if name in parsed:
            errors[path] = f"two files define prompt {name!r}"
            continue
        hit = parse_cached(c.key, c.data, path, src.cache, cache)
        if isinstance(hit, str):
            errors[path] = hit
            continue
        parsed[name] = _Parsed(hit[0], hit[1], CurrentFile(c.path, c.key, hit[2], c.info))
    return parsed


def _history_of(
    name: str,
    changes: list[FileChange],
    src: Sources,
    cache: ParseCache,
    warnings: list[str],
) -> list[PromptVersion]:
    """The versions of ``name``, newest first, one per change of content.

    ``changes`` are newest first; they are walked oldest first so each version is dated by the
    commit that introduced it. A commit that leaves the content as it was is not a new version,
    but a deletion ends a run, so content re-added later counts again.
    """
    entries: list[PromptVersion] = []
    last: str | None = None
    for ch in reversed(changes):
        if ch.blob is None or not is_yaml(ch.path):
            last = None
            continue
        data = src.blobs.get(ch.blob)
        if data is None and ch.blob not in src.cache:
            warnings.append(f"{ch.path}@{ch.info.commit[:10]}: blob missing")
            continue
        hit = parse_cached(ch.blob, data or b"", ch.path, src.cache, cache)
        if isinstance(hit, str):
            warnings.append(f"{ch.path}@{ch.info.commit[:10]}: {hit}")
            continue
        if hit[0] == last:
            continue
        last = hit[0]
        entries.append(version_of(name, hit[0], hit[1], ch.path, hit[2], ch.info))
    entries.reverse()
    return entries


def _with_production(
    name: str, p: _Parsed, entries: list[PromptVersion], src: Sources
) -> tuple[PromptVersion, tuple[PromptVersion, ...]]:
    """The served version and the full history including it.

    Taken from history when it is there (so it carries the commit that introduced it), else made
    from the file itself (uncommitted, or older than a shallow cut). A working-tree edit back to
    an older version goes on top, since that is what is served now. Its template is compiled
    here, before the registry is swapped in, so the first request does not pay for it.
    """
    c = p.file
    prod = next((e for e in entries if e.version == p.version), None)
    text = c.data.decode("utf-8", errors="replace")
    if prod is None:
        info = src.resolve_info(c.path)
        prod = version_of(name, p.version, p.template, c.path, c.data, info)
        entries.insert(0, prod)
    elif prod.text != text:
        prod = prod.model_copy(update={"text": text})
    if src.working_tree and entries and entries[0].version != p.version:
        entries.insert(0, prod)
    prod.template.compile()
    return prod, tuple(entries)


def _load_labels(src: Sources, errors: dict[str, str]) -> LabelsFile | None:
    """The labels file, None if there is none; an invalid one is an error and reads as empty."""
    if src.labels_data is None:
        return None
    try:
        parsed = load_yaml(src.labels_data, source=src.labels_path) or {}
        return LabelsFile.model_validate(parsed)
    except ValidationError as e:
        errors[src.labels_path] = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'labels'}: {err['msg']}" for err in e.errors()
        )
    except ValueError as e:  # YAML syntax
        errors[src.labels_path] = str(e)
    return LabelsFile()


def _resolve_labels(
    src: Sources,
    labels_file: LabelsFile,
    parsed: dict[str, _Parsed],
    history: dict[str, tuple[PromptVersion, ...]],
    current: dict[str, PromptVersion],
    errors: dict[str, str],
) -> tuple[Labels, dict[str, list[tuple[float, PromptVersion]]]]:
    """label -> prompt -> version, and the weighted (canary) targets per prompt in label order.

    A target that parsed but whose version is not available here (shallow clone, no history) is
    kept as the error to raise when asked for, so one missing old version does not stop the
    registry from loading.
    """
    labels: Labels = {}
    weighted: dict[str, list[tuple[float, PromptVersion]]] = {}
    for label in sorted(labels_file.labels):
        out: dict[str, PromptVersion | PromptError] = {}
        for name, target in labels_file.labels[label].items():
            found = _resolve_target(src, label, name, target, parsed, history, current, errors)
            if found is None:
                continue
            out[name] = found
            if isinstance(found, PromptVersion) and target.weight:
                weighted.setdefault(name, []).append((target.weight, found))
        labels[label] = out
    return labels, weighted


def _resolve_target(
    src: Sources,
    label: str,
    name: str,
    target: LabelTarget,
    parsed: dict[str, _Parsed],
    history: dict[str, tuple[PromptVersion, ...]],
    current: dict[str, PromptVersion],
    errors: dict[str, str],
) -> PromptVersion | PromptError | None:
    """The version ``label`` pins ``name`` to, the error to raise on use, or None (recorded in
    ``errors`` when it is the labels file's fault; a prompt whose file is broken already is)."""
    if name not in parsed:
        if name not in src.current and not any(stem(p) == name for p in src.current):
            errors[src.labels_path] = f"label {label!r} names unknown prompt {name!r}"
        return None
    found = _find(history[name], current[name], target.version)
    if isinstance(found, PromptVersion):
        found.template.compile()
        return found
    if found == "ambiguous":
        errors[src.labels_path] = f"{label}.{name}: version {target.version!r} ambiguous"
        return None
    origin = src.origin
    if origin.shallow or not origin.has_history:
        why = "shallow clone" if origin.shallow else "no git history"
        return HistoryUnavailable(
            f"label {label!r} points {name!r} at version {target.version}, which "
            f"is not available here ({why})",
            param="prompt.version",
        )
    errors[src.labels_path] = f"{label}.{name}: version {target.version!r} is not in the history"
    return None


def _find(history: tuple[PromptVersion, ...], current: PromptVersion, v: str) -> Any:
    """The version ``v`` names (exact, else a unique prefix), ``"ambiguous"`` or None."""
    if current.version == v:
        return current
    exact = next((e for e in history if e.version == v), None)
    if exact is not None:
        return exact
    matches = {e.version: e for e in history if e.version.startswith(v)}
    if len(matches) == 1:
        return next(iter(matches.values()))
    return "ambiguous" if matches else None


def _cumulative_splits(weighted: Mapping[str, list[tuple[float, PromptVersion]]]) -> Splits:
    """Canary weights as cumulative upper bounds, so a lookup picks a version by comparing the
    user's bucket in [0, 1) against them in order; what is left over is production."""
    splits: Splits = {}
    for name, parts in weighted.items():
        acc = 0.0
        cum: list[tuple[float, PromptVersion]] = []
        for w, pv in parts:
            acc += w
            cum.append((acc, pv))
        splits[name] = tuple(cum)
    return splits
