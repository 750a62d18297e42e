"""The registry: every prompt's versions, read from git objects or a folder, plus labels.

A registry is an immutable snapshot: reloading builds a new one and swaps it whole, so a reader
never sees half of a change. Lookups are dictionary reads, cheap enough for the request path.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ._errors import (
    GitError,
    HistoryUnavailable,
    InvalidTemplate,
    PromptError,
    PromptNotFound,
)
from ._git import CommitInfo, FileChange, Git, is_yaml, stem
from ._labels import RESERVED_LABELS, LabelsFile, bucket
from ._template import PromptTemplate, canonical_version, load_yaml, template_from_data

log = logging.getLogger("prompts.registry")

DEFAULT_LABELS_FILE = "labels.yaml"


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
class _Current:
    path: str
    key: str
    data: bytes
    info: CommitInfo | None


def _parse(key: str, data: bytes, path: str, cache: Mapping[str, Any], out: ParseCache) -> Any:
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


class PromptRegistry:
    """Prompts by name, each with its production version, history and labels."""

    def __init__(
        self,
        *,
        current: dict[str, PromptVersion],
        history: dict[str, tuple[PromptVersion, ...]],
        labels: dict[str, dict[str, PromptVersion | PromptError]],
        splits: dict[str, tuple[tuple[float, PromptVersion], ...]],
        source: str,
        commit: str | None = None,
        shallow: bool = False,
        has_history: bool = True,
        warnings: tuple[str, ...] = (),
        git: Git | None = None,
        prompts_dir: str = "prompts",
        cache: ParseCache | None = None,
    ) -> None:
        self._current = current
        self._history = history
        self._by_version = {
            n: {v.version: v for v in reversed(h)} | {current[n].version: current[n]}
            for n, h in history.items()
        }
        self._labels = labels
        self._splits = splits
        self.source = source
        self.commit = commit
        self.shallow = shallow
        self.has_history = has_history
        self.warnings = warnings
        self._git = git
        self._prompts_dir = prompts_dir
        self._cache: ParseCache = cache or {}

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_git(
        cls,
        repo: Path | str,
        ref: str = "HEAD",
        prompts_dir: str = "prompts",
        *,
        labels_file: str = DEFAULT_LABELS_FILE,
        previous: PromptRegistry | None = None,
    ) -> PromptRegistry:
        """Read the templates at ``ref`` and their history from git objects (no checkout).

        Works in bare and shallow clones; in a shallow clone versions older than the cut are
        missing and asking for one raises :class:`HistoryUnavailable`. ``previous`` lends its
        parse cache (blobs never change), which makes reloads cheap.
        """
        git = Git(repo)
        prompts_dir = prompts_dir.strip("/")
        if prompts_dir == ".":
            prompts_dir = ""
        commit = git.resolve(ref)
        shallow = git.is_shallow()
        files = git.ls_dir(commit, prompts_dir)
        labels_path = f"{prompts_dir}/{labels_file}" if prompts_dir else labels_file
        changes = git.log(commit, prompts_dir)
        wanted = [sha for p, sha in files.items() if is_yaml(p)]
        wanted += [c.blob for c in changes if c.blob and is_yaml(c.path)]
        cache = previous._cache if previous is not None else {}
        blobs = git.read_blobs(sha for sha in wanted if sha not in cache)
        current: dict[str, _Current] = {}
        for path, sha in files.items():
            if is_yaml(path) and path != labels_path:
                current[path] = _Current(path, sha, blobs.get(sha, b""), None)
        labels_sha = files.get(labels_path)
        labels_data = git.read_blobs([labels_sha])[labels_sha] if labels_sha else None
        return _build(
            current=current,
            changes=[c for c in changes if c.path != labels_path],
            blobs=blobs,
            labels_data=labels_data,
            labels_path=labels_path,
            cache=cache,
            source=f"git:{repo}@{ref}",
            commit=commit,
            shallow=shallow,
            has_history=True,
            git=git,
            prompts_dir=prompts_dir,
            resolve_info=lambda path: git.last_change(commit, path),
        )

    @classmethod
    def from_directory(
        cls,
        path: Path | str,
        *,
        labels_file: str = DEFAULT_LABELS_FILE,
        history: bool = True,
        previous: PromptRegistry | None = None,
    ) -> PromptRegistry:
        """Read the template files in a folder (development; no commit needed).

        If the folder is inside a git work tree with commits and ``history`` is true, the
        history of its files at HEAD is attached, so pinned versions and labels work too.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise PromptNotFound(f"prompt folder {folder} does not exist")
        cache = previous._cache if previous is not None else {}
        current: dict[str, _Current] = {}
        for f in sorted(folder.iterdir()):
            if f.is_file() and is_yaml(f.name) and f.name != labels_file:
                data = f.read_bytes()
                key = "sha256:" + hashlib.sha256(data).hexdigest()
                current[f.name] = _Current(f.name, key, data, None)
        labels_p = folder / labels_file
        labels_data = labels_p.read_bytes() if labels_p.is_file() else None

        changes: list[FileChange] = []
        blobs: dict[str, bytes] = {c.key: c.data for c in current.values()}
        git: Git | None = None
        prefix = ""
        commit: str | None = None
        shallow = False
        if history:
            git, prefix, commit, changes, shallow = _dir_history(folder, labels_file)
            if git is not None:
                blobs |= git.read_blobs(
                    c.blob for c in changes if c.blob and is_yaml(c.path) and c.blob not in cache
                )
        # history paths are repo-relative; current paths are file names: key history by name
        return _build(
            current=current,
            changes=changes,
            blobs=blobs,
            labels_data=labels_data,
            labels_path=labels_file,
            cache=cache,
            source=f"dir:{folder}",
            commit=commit,
            shallow=shallow,
            has_history=git is not None,
            git=git,
            prompts_dir=prefix,
            resolve_info=lambda p: _mtime_info(folder / p),
            working_tree=True,
        )

    # lookups --------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, name: object) -> bool:
        return name in self._current

    @property
    def labels(self) -> dict[str, dict[str, str]]:
        """label -> prompt -> version (unresolvable targets are left out)."""
        return {
            label: {n: v.version for n, v in t.items() if isinstance(v, PromptVersion)}
            for label, t in self._labels.items()
        }

    def labels_of(self, name: str) -> dict[str, PromptVersion | PromptError]:
        return {label: t[name] for label, t in self._labels.items() if name in t}

    def weights(self, name: str) -> dict[str, float]:
        """Share of production traffic each weighted label of ``name`` takes."""
        out: dict[str, float] = {}
        lower = 0.0
        for upper, pv in self._splits.get(name, ()):
            for label, t in self._labels.items():
                if t.get(name) is pv:
                    out[label] = upper - lower
            lower = upper
        return out

    def production(self, name: str) -> PromptVersion:
        """The version at the served ref, ignoring canary splits."""
        current = self._current.get(name)
        if current is None:
            raise PromptNotFound(f"prompt {name!r} not found", param="prompt.id")
        return current

    def get(
        self, name: str, version_or_label: str | None = None, *, user: str | None = None
    ) -> PromptVersion:
        """Resolve a prompt by name and optional version id (or unique prefix) or label.

        None or ``production``: the version at the served ref, except that a weighted label
        (canary) takes its share of traffic, sticky per ``user``. A label that does not name
        this prompt falls back to production.
        """
        current = self._current.get(name)
        if current is None:
            raise PromptNotFound(f"prompt {name!r} not found", param="prompt.id")
        v = version_or_label
        if v is None or v == "production" or v == "latest":
            splits = self._splits.get(name)
            if splits:
                b = bucket(name, user)
                for upper, pv in splits:
                    if b < upper:
                        return pv
            return current
        targets = self._labels.get(v)
        if targets is not None:
            target = targets.get(name)
            if target is None:
                return current
            if isinstance(target, PromptError):
                raise target
            return target
        return self._version(name, v)

    def _version(self, name: str, v: str) -> PromptVersion:
        versions = self._by_version[name]
        found = versions.get(v)
        if found is not None:
            return found
        if len(v) >= 4:
            matches = [pv for k, pv in versions.items() if k.startswith(v)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise PromptNotFound(
                    f"version {v!r} of prompt {name!r} is ambiguous", param="prompt.version"
                )
        if not self.has_history:
            raise HistoryUnavailable(
                f"version {v!r} of prompt {name!r} is not the current one and {self.source} "
                "has no git history",
                param="prompt.version",
            )
        if self.shallow:
            raise HistoryUnavailable(
                f"version {v!r} of prompt {name!r} is not in the history of this shallow clone; "
                "fetch more history (git fetch --unshallow)",
                param="prompt.version",
            )
        raise PromptNotFound(
            f"prompt {name!r} has no version or label {v!r}", param="prompt.version"
        )

    def history(self, name: str) -> list[PromptVersion]:
        """Every version of ``name``, newest first (one entry per change of content)."""
        if name not in self._history:
            raise PromptNotFound(f"prompt {name!r} not found", param="prompt.id")
        return list(self._history[name])

    def version_at(self, name: str, ref: str) -> PromptVersion:
        """The version ``name`` had at git ``ref`` (any commit, tag or branch)."""
        if name not in self._current:
            raise PromptNotFound(f"prompt {name!r} not found", param="prompt.id")
        if self._git is None:
            raise HistoryUnavailable(f"{self.source} has no git history to read {ref!r} from")
        git = self._git
        commit = git.resolve(ref)
        files = git.ls_dir(commit, self._prompts_dir)
        cur = self._current[name].path or ""
        candidates = [
            p for p in files if is_yaml(p) and stem(p) == name and not p.endswith("/labels.yaml")
        ]
        if not candidates:
            raise PromptNotFound(f"prompt {name!r} did not exist at {ref!r}", param="prompt.id")
        path = next((p for p in candidates if p.endswith(cur.rsplit("/", 1)[-1])), candidates[0])
        sha = files[path]
        data = git.read_blobs([sha])[sha]
        hit = _parse(sha, data, path, self._cache, {})
        if isinstance(hit, str):
            raise InvalidTemplate({path: hit})
        version, tpl, _ = hit
        known = self._by_version[name].get(version)
        if known is not None:
            return known
        info = git.last_change(commit, path)
        return _version_of(name, version, tpl, path, data, info)

    def __repr__(self) -> str:
        return f"PromptRegistry({self.source}, {len(self)} prompts, commit={self.commit})"


def _version_of(
    name: str,
    version: str,
    tpl: PromptTemplate,
    path: str,
    data: bytes,
    info: CommitInfo | None,
) -> PromptVersion:
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


def _mtime_info(path: Path) -> CommitInfo | None:
    try:
        ts = path.stat().st_mtime
    except OSError:
        return None
    return CommitInfo("", "", datetime.fromtimestamp(ts, UTC), "working tree")


def _dir_history(
    folder: Path, labels_file: str
) -> tuple[Git | None, str, str | None, list[FileChange], bool]:
    """History of a working-tree folder's files at HEAD, if it lives in a git repository."""
    git = Git(folder)
    try:
        top = git.toplevel_prefix()
        if top is None:
            return None, "", None, [], False
        root, prefix = top
        git = Git(root)
        commit = git.resolve("HEAD")
        changes = git.log(commit, prefix)
        shallow = git.is_shallow()
    except PromptError:
        return None, "", None, [], False
    labels_path = f"{prefix}/{labels_file}" if prefix else labels_file
    return git, prefix, commit, [c for c in changes if c.path != labels_path], shallow


def _build(
    *,
    current: dict[str, _Current],
    changes: list[FileChange],
    blobs: Mapping[str, bytes],
    labels_data: bytes | None,
    labels_path: str,
    cache: Mapping[str, Any],
    source: str,
    commit: str | None,
    shallow: bool,
    has_history: bool,
    git: Git | None,
    prompts_dir: str,
    resolve_info: Any,
    working_tree: bool = False,
) -> PromptRegistry:
    new_cache: ParseCache = {}
    errors: dict[str, str] = {}
    warnings: list[str] = []
    cur_versions: dict[str, tuple[str, PromptTemplate, _Current]] = {}
    for path, c in current.items():
        name = stem(path)
        if name == stem(labels_path):
            errors[path] = f"the name {name!r} is reserved for the labels file"
            continue
        if name in cur_versions:
            errors[path] = f"two files define prompt {name!r}"
            continue
        hit = _parse(c.key, c.data, path, cache, new_cache)
        if isinstance(hit, str):
            errors[path] = hit
            continue
        cur_versions[name] = (hit[0], hit[1], _Current(c.path, c.key, hit[2], c.info))

    by_name: dict[str, list[FileChange]] = {}
    for ch in changes:
        by_name.setdefault(stem(ch.path), []).append(ch)

    history: dict[str, tuple[PromptVersion, ...]] = {}
    cur_pv: dict[str, PromptVersion] = {}
    for name, (version, tpl, c) in cur_versions.items():
        entries: list[PromptVersion] = []
        last: str | None = None
        for ch in reversed(by_name.get(name, [])):  # oldest first
            if ch.blob is None or not is_yaml(ch.path):
                last = None
                continue
            data = blobs.get(ch.blob)
            if data is None and ch.blob not in cache:
                warnings.append(f"{ch.path}@{ch.info.commit[:10]}: blob missing")
                continue
            hit = _parse(ch.blob, data or b"", ch.path, cache, new_cache)
            if isinstance(hit, str):
                warnings.append(f"{ch.path}@{ch.info.commit[:10]}: {hit}")
                continue
            if hit[0] == last:
                continue
            last = hit[0]
            entries.append(_version_of(name, hit[0], hit[1], ch.path, hit[2], ch.info))
        entries.reverse()  # newest first
        prod = next((e for e in entries if e.version == version), None)
        text = c.data.decode("utf-8", errors="replace")
        if prod is None:
            info = resolve_info(c.path)
            prod = _version_of(name, version, tpl, c.path, c.data, info)
            entries.insert(0, prod)
        elif prod.text != text:
            prod = prod.model_copy(update={"text": text})
        if working_tree and entries and entries[0].version != version:
            entries.insert(0, prod)
        prod.template.compile()  # the served versions are ready before the swap
        cur_pv[name] = prod
        history[name] = tuple(entries)

    labels: dict[str, dict[str, PromptVersion | PromptError]] = {}
    splits_acc: dict[str, list[tuple[float, PromptVersion]]] = {}
    if labels_data is not None:
        try:
            parsed = load_yaml(labels_data, source=labels_path) or {}
            lf = LabelsFile.model_validate(parsed)
        except ValidationError as e:
            errors[labels_path] = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'labels'}: {err['msg']}" for err in e.errors()
            )
            lf = LabelsFile()
        except ValueError as e:  # YAML syntax
            errors[labels_path] = str(e)
            lf = LabelsFile()
        for label in sorted(lf.labels):
            out: dict[str, PromptVersion | PromptError] = {}
            for name, target in lf.labels[label].items():
                if name not in cur_versions:
                    if name not in current and not any(stem(p) == name for p in current):
                        errors[labels_path] = f"label {label!r} names unknown prompt {name!r}"
                    continue
                found = _find(history[name], cur_pv[name], target.version)
                if isinstance(found, PromptVersion):
                    found.template.compile()
                    out[name] = found
                    if target.weight:
                        splits_acc.setdefault(name, []).append((target.weight, found))
                elif found == "ambiguous":
                    errors[labels_path] = f"{label}.{name}: version {target.version!r} ambiguous"
                elif shallow or not has_history:
                    why = "shallow clone" if shallow else "no git history"
                    out[name] = HistoryUnavailable(
                        f"label {label!r} points {name!r} at version {target.version}, which "
                        f"is not available here ({why})",
                        param="prompt.version",
                    )
                else:
                    errors[labels_path] = (
                        f"{label}.{name}: version {target.version!r} is not in the history"
                    )
            labels[label] = out
    if errors:
        raise InvalidTemplate(errors)
    splits: dict[str, tuple[tuple[float, PromptVersion], ...]] = {}
    for name, parts in splits_acc.items():
        acc = 0.0
        cum: list[tuple[float, PromptVersion]] = []
        for w, pv in parts:
            acc += w
            cum.append((acc, pv))
        splits[name] = tuple(cum)
    for warning in warnings:
        log.debug("prompt history: %s", warning)
    return PromptRegistry(
        current=cur_pv,
        history=history,
        labels=labels,
        splits=splits,
        source=source,
        commit=commit,
        shallow=shallow,
        has_history=has_history,
        warnings=tuple(warnings),
        git=git,
        prompts_dir=prompts_dir,
        cache=new_cache,
    )


def _find(history: tuple[PromptVersion, ...], current: PromptVersion, v: str) -> Any:
    if current.version == v:
        return current
    exact = next((e for e in history if e.version == v), None)
    if exact is not None:
        return exact
    matches = {e.version: e for e in history if e.version.startswith(v)}
    if len(matches) == 1:
        return next(iter(matches.values()))
    return "ambiguous" if matches else None


__all__ = ["RESERVED_LABELS", "GitError", "PromptRegistry", "PromptVersion"]
