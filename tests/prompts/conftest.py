"""Temporary git repositories built with the real ``git`` binary."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest


class Repo:
    """A throwaway work tree with helpers to write prompt files and commit them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self._tick = 0

    def git(self, *args: str) -> str:
        self._tick = getattr(self, "_tick", 0) + 1
        date = f"{1_767_268_800 + 60 * self._tick} +0000"  # strictly increasing
        env = {
            **os.environ,
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.path),
        }
        out = subprocess.run(
            ["git", "-C", str(self.path), *args], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def write(self, rel: str, text: str) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
        return p

    def prompt(self, name: str, content: str = "Hello {{ who }}", *, desc: str = "") -> Path:
        return self.write(
            f"prompts/{name}.yaml",
            f"""\
            name: {name}
            description: "{desc}"
            variables:
              who: {{type: string}}
            messages:
              - role: user
                content: "{content}"
            """,
        )

    def commit(self, message: str, author: str = "Ada <ada@example.com>") -> str:
        self.git("add", "-A")
        name, _, email = author.partition(" <")
        self.git(
            "-c", f"user.name={name}", "-c", f"user.email={email.rstrip('>')}",
            "commit", "-q", "--allow-empty", "-m", message,
        )  # fmt: skip
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")
