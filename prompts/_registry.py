"""The registry: every prompt's versions, read from git objects or a folder, plus labels.

A registry is an immutable snapshot: reloading builds a new one and swaps it whole, so a reader
never sees half of a change. Lookups are dictionary reads, cheap enough for the request path.
"""

from __future__ import annotations

from pathlib import Path

from ._build import Labels, Splits, build
from ._errors import (
    GitError,
    HistoryUnavailable,
    InvalidTemplate,
    PromptError,
    PromptNotFound,
)
from ._git import Git, is_yaml, stem
from ._labels import RESERVED_LABELS, bucket
from ._sources import Sources, read_folder, read_git
from ._versions import ParseCache, PromptVersion, parse_cached, version_of

DEFAULT_LABELS_FILE = "labels.yaml"


class PromptRegistry:
    """Prompts by name, each with its production version, history and labels."""

    def __init__(
        self,
        *,
        current: dict[str, PromptVersion],
        history: dict[str, tuple[PromptVersion, ...]],
        labels: Labels,
        splits: Splits,
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
        cache = previous._cache if previous is not None else {}
        return cls._built(read_git(repo, ref, prompts_dir, labels_file, cache))

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
        cache = previous._cache if previous is not None else {}
        return cls._built(read_folder(path, labels_file, history, cache))

    @classmethod
    def _built(cls, src: Sources) -> PromptRegistry:
        """Build from what was read (raises :class:`InvalidTemplate` before constructing)."""
        built = build(src)
        o = src.origin
        return cls(
            current=built.current,
            history=built.history,
            labels=built.labels,
            splits=built.splits,
            source=o.source,
            commit=o.commit,
            shallow=o.shallow,
            has_history=o.has_history,
            warnings=built.warnings,
            git=o.git,
            prompts_dir=o.prompts_dir,
            cache=built.cache,
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
        hit = parse_cached(sha, data, path, self._cache, {})
        if isinstance(hit, str):
            raise InvalidTemplate({path: hit})
        version, tpl, _ = hit
        known = self._by_version[name].get(version)
        if known is not None:
            return known
        info = git.last_change(commit, path)
        return version_of(name, version, tpl, path, data, info)

    def __repr__(self) -> str:
        return f"PromptRegistry({self.source}, {len(self)} prompts, commit={self.commit})"


__all__ = ["RESERVED_LABELS", "GitError", "PromptRegistry", "PromptVersion"]
