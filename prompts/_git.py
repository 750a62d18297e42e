"""Read-only git plumbing: the registry reads templates from git objects, never from a checkout.

Why a subprocess and not a library: ``git`` is everywhere the repository is, handles bare, shallow
and packed repositories, and needs no dependency. A few calls per load: ``rev-parse``, ``ls-tree``,
one ``log --raw`` over the prompts folder, one ``cat-file --batch`` for every blob not cached.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ._errors import GitError, HistoryUnavailable

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


def is_yaml(path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


def stem(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0]


class Git:
    """A git repository addressed by path (working tree, subfolder of one, or bare)."""

    def __init__(self, repo: Path | str) -> None:
        self.repo = Path(repo)

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
            raise GitError(
                "git is not installed (the prompt registry reads history with it)"
            ) from None
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise GitError(f"git {' '.join(args[:2])} failed in {self.repo}: {err}")
        return proc.stdout

    def resolve(self, ref: str) -> str:
        """The commit id ``ref`` names; HistoryUnavailable if a shallow clone lacks it."""
        out = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        sha = out.decode().strip()
        if not sha:
            if self.is_shallow():
                raise HistoryUnavailable(
                    f"ref {ref!r} is not in this shallow clone of {self.repo}; "
                    "fetch more history (git fetch --unshallow)"
                )
            raise GitError(f"unknown git ref {ref!r} in {self.repo}")
        return sha

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
            "log", "-z", "--raw", "--no-abbrev", "--no-renames", "--no-color",
            f"--format={_FORMAT}", commit, "--", spec,
        )  # fmt: skip
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
