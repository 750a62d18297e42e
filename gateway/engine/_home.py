"""Where engine venvs, converted models, caches and logs live ($LLMOPS_HOME)."""

from __future__ import annotations

import os
from pathlib import Path


def llmops_home(home: Path | str | None = None) -> Path:
    """The data directory: the argument, else ``$LLMOPS_HOME``, else ``~/.cache/llmops``."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("LLMOPS_HOME")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/llmops").expanduser()
