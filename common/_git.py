"""Read-only git plumbing: read files and history from git objects, never from a checkout.

Why a subprocess and not a library: ``git`` is everywhere the repository is, handles bare, shallow
and packed repositories, and needs no dependency. A few calls per load: ``rev-parse``, ``ls-tree``,
one ``log --raw`` over a folder, one ``cat-file --batch`` for every blob not cached. The prompt
registry and the evals (refs, merge bases) both read git through this class.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class GitError(Exception):
    """A git command failed, or git is missing."""


class ShallowHistoryError(GitError):
    """The commit may exist, but this shallow clone lacks the history to find it."""


_ZERO = "0" * 40
_FORMAT = "%x1e%H%x1f%an <%ae>%x1f%aI%x1f%s"
_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """Who changed what, when and why."""

    commit: str
    author: str
    date: datetime
    message: str


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file changed by one commit; ``blob`` is None where the commit deleted it."""

    info: CommitInfo
    path: str
    blob: str | None


class Git:
    """A git repository addressed by path (working tree, subfolder of one, or bare).

    ``error`` and ``shallow_error`` build the exceptions raised, so a caller's own error types
    (with their HTTP status) come out without a translation layer.
    """

    def __init__(
        self,
        repo: Path | str,
        *,
        error: Callable[[str], Exception] = GitError,
        shallow_error: Callable[[str], Exception] = ShallowHistoryError,
    ) -> None:
        self.repo = Path(repo)
        self._error = error
        self._shallow_error = shallow_error

    def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes:
        cmd = ["git", "-C", str(self.repo), "-c", "log.showSignature=false", *args]
        try:
            proc = subprocess.run(
                cmd,
                input=stdin,
                capture_output=True,
                env={**os.environ, **_ENV},
                check=False,
            )
        except FileNotFoundError:
            raise self._error("git is not installed (history is read with it)") from None
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise self._error(f"git {' '.join(args[:2])} failed in {self.repo}: {err}")
        return proc.stdout

    def resolve(self, ref: str) -> str:
        """The commit id ``ref`` names; the shallow error if a shallow clone lacks it."""
        out = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        sha = out.decode().strip()
        if not sha:
            if self.is_shallow():
                raise self._shallow_error(
                    f"ref {ref!r} is not in this shallow clone of {self.repo}; "
                    "fetch more history (git fetch --unshallow)"
                )
            raise self._error(f"unknown git ref {ref!r} in {self.repo}")
        return sha

    def toplevel(self) -> Path | None:
        """The root of the work tree holding ``repo``, or None outside one."""
        found = self.toplevel_prefix()
        return found[0] if found else None

    def merge_base(self, a: str, b: str) -> str:
        """``git merge-base a b`` (what a pull request is compared against)."""
        return self.run("merge-base", a, b).decode().strip()

    def is_shallow(self) -> bool:
        return self.run("rev-parse", "--is-shallow-repository").strip() == b"true"

    def toplevel_prefix(self) -> tuple[Path, str] | None:
        """(work tree root, path of ``repo`` inside it) or None outside a work tree."""
        out = self.run("rev-parse", "--show-toplevel", "--show-prefix", check=False)
        lines = out.decode().split("\n")
        if len(lines) < 2 or not lines[0]:
            return None
        return Path(lines[0]), lines[1].rstrip("/")

    def ls_dir(self, commit: str, directory: str) -> dict[str, str]:
        """Path -> blob id of the files directly inside ``directory`` at ``commit``."""
        spec = f"{commit}:{directory}" if directory else f"{commit}^{{tree}}"
        exists = self.run("cat-file", "-t", spec, check=False).strip()
        if exists != b"tree":
            return {}
        out = self.run(
            "ls-tree", "-z", "--full-tree", commit, *([f"{directory}/"] if directory else [])
        )
        files: dict[str, str] = {}
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, _, path = rec.partition(b"\t")
            _mode, kind, sha = meta.decode().split(" ")
            if kind == "blob":
                files[path.decode()] = sha
        return files

    def log(self, commit: str, directory: str) -> list[FileChange]:
        """Every change to files directly in ``directory`` reachable from ``commit``, newest first.

        Merge commits show no diff of their own (git's default), so a change is credited to the
        commit that made it on its branch.
        """
        spec = f":(top){directory}" if directory else ":(top)."
        out = self.run(
            "log",
            "-z",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "--no-color",
            f"--format={_FORMAT}",
            commit,
            "--",
            spec,
        )
        changes: list[FileChange] = []
        prefix = f"{directory}/" if directory else ""
        for rec in out.split(b"\x1e"):
            if not rec.strip(b"\0\n"):
                continue
            header, _, rest = rec.partition(b"\0")
            sha, author, date, message = header.decode(errors="replace").split("\x1f", 3)
            info = CommitInfo(sha, author, datetime.fromisoformat(date), message)
            fields = rest.lstrip(b"\n").split(b"\0")
            for i in range(0, len(fields) - 1, 2):
                meta, path = fields[i].decode(), fields[i + 1].decode()
                if not meta.startswith(":"):
                    continue
                parts = meta[1:].split(" ")
                new = parts[3]
                rel = path[len(prefix) :] if path.startswith(prefix) else None
                if rel is None or "/" in rel:
                    continue
                changes.append(FileChange(info, path, None if new == _ZERO else new))
        return changes

    def last_change(self, commit: str, path: str) -> CommitInfo | None:
        out = self.run("log", "-1", f"--format={_FORMAT}", commit, "--", f":(top){path}")
        text = out.decode(errors="replace").strip("\x1e\n")
        if not text:
            return None
        sha, author, date, message = text.split("\x1f", 3)
        return CommitInfo(sha, author, datetime.fromisoformat(date), message.strip())

    def read_blobs(self, names: Iterable[str]) -> dict[str, bytes]:
        """Contents of objects (blob ids or ``rev:path``) by ``cat-file --batch``; missing ones
        are left out."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        out = self.run("cat-file", "--batch", stdin=("\n".join(names) + "\n").encode())
        blobs: dict[str, bytes] = {}
        pos = 0
        for name in names:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].decode().split(" ")
            pos = nl + 1
            if len(header) != 3:  # "<name> missing" / "ambiguous"
                continue
            size = int(header[2])
            blobs[name] = out[pos : pos + size]
            pos += size + 1
        return blobs
