"""The registry's git reader: the common one, raising this package's errors."""

from __future__ import annotations

from pathlib import Path

from common import CommitInfo, FileChange
from common import Git as _CommonGit

from ._errors import GitError, HistoryUnavailable


class Git(_CommonGit):
    """A reader whose failures are :class:`GitError` and :class:`HistoryUnavailable` (HTTP 404)."""

    def __init__(self, repo: Path | str) -> None:
        super().__init__(repo, error=GitError, shallow_error=HistoryUnavailable)


def is_yaml(path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


def stem(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0]


__all__ = ["CommitInfo", "FileChange", "Git", "is_yaml", "stem"]
