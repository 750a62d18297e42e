"""The data directory (``$LLMOPS_HOME``): engines, models, vectors, caches, logs, drift samples.

Everything that is not the user's git data lives there, so one rule decides where it is.
"""

from __future__ import annotations

import os
from pathlib import Path


def llmops_home(home: Path | str | None = None) -> Path:
    """The argument, else a non-empty ``$LLMOPS_HOME``, else ``~/.cache/llmops``; ``~`` expanded."""
    if home is not None and str(home) != "":
        return Path(home).expanduser()
    env = os.environ.get("LLMOPS_HOME")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/llmops").expanduser()


def variant_events_file(home: Path | str | None = None) -> Path:
    """The gateway's log of model-variant requests and feedback (read by ``llmops ab``)."""
    return llmops_home(home) / "gateway" / "variant-events.jsonl"
