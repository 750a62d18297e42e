"""Reading what a registry is built from: template files, their history and the labels file.

All the I/O happens here, up front, so the build steps in ``_build`` are pure functions of a
:class:`Sources` (the one exception is ``resolve_info``, asked only for files history misses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._errors import PromptError, PromptNotFound
from ._git import CommitInfo, FileChange, Git, is_yaml
from ._versions import CurrentFile


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a registry was read from; the registry keeps it to go back to git later."""

    source: str
    commit: str | None
    shallow: bool
    has_history: bool
    git: Git | None
    prompts_dir: str


@dataclass(frozen=True, slots=True)
class Sources:
    """Everything one build reads: files at the served ref, their changes and the labels file.

    ``current`` maps a path to its file; ``changes`` is the history of those paths (newest first,
    labels file left out) and ``blobs`` their contents by key. ``cache`` is the previous
    registry's parses. ``resolve_info`` gives the commit info of a current file that is not in
    the history. ``working_tree`` is set when current files may differ from the last commit.
    """

    current: dict[str, CurrentFile]
    changes: list[FileChange]
    blobs: Mapping[str, bytes]
    labels_data: bytes | None
    labels_path: str
    cache: Mapping[str, Any]
    resolve_info: Callable[[str], CommitInfo | None]
    origin: Origin
    working_tree: bool = False


def read_git(
    repo: Path | str, ref: str, prompts_dir: str, labels_file: str, cache: Mapping[str, Any]
) -> Sources:
    """The templates at ``ref`` and their history, from git objects (no checkout).

    Blobs already in ``cache`` are not read again: they never change.
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
    blobs = git.read_blobs(sha for sha in wanted if sha not in cache)
    current: dict[str, CurrentFile] = {}
    for path, sha in files.items():
        if is_yaml(path) and path != labels_path:
            current[path] = CurrentFile(path, sha, blobs.get(sha, b""), None)
    labels_sha = files.get(labels_path)
    labels_data = git.read_blobs([labels_sha])[labels_sha] if labels_sha else None
    return Sources(
        current=current,
        changes=[c for c in changes if c.path != labels_path],
        blobs=blobs,
        labels_data=labels_data,
        labels_path=labels_path,
        cache=cache,
        resolve_info=lambda path: git.last_change(commit, path),
        origin=Origin(
            source=f"git:{repo}@{ref}",
            commit=commit,
            shallow=shallow,
            has_history=True,
            git=git,
            prompts_dir=prompts_dir,
        ),
    )


def read_folder(
    path: Path | str, labels_file: str, history: bool, cache: Mapping[str, Any]
) -> Sources:
    """The template files in a folder, plus their git history at HEAD when ``history`` is set
    and the folder is inside a work tree with commits.

    History paths are repo-relative while current paths are file names; the build matches them
    by prompt name, so the two need not agree.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise PromptNotFound(f"prompt folder {folder} does not exist")
    current: dict[str, CurrentFile] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and is_yaml(f.name) and f.name != labels_file:
            data = f.read_bytes()
            key = "sha256:" + hashlib.sha256(data).hexdigest()
            current[f.name] = CurrentFile(f.name, key, data, None)
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
    return Sources(
        current=current,
        changes=changes,
        blobs=blobs,
        labels_data=labels_data,
        labels_path=labels_file,
        cache=cache,
        resolve_info=lambda p: _mtime_info(folder / p),
        origin=Origin(
            source=f"dir:{folder}",
            commit=commit,
            shallow=shallow,
            has_history=git is not None,
            git=git,
            prompts_dir=prefix,
        ),
        working_tree=True,
    )


def _mtime_info(path: Path) -> CommitInfo | None:
    """Commit-like info for a working-tree file: only its modification time is known."""
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
