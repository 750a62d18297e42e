"""Which gateway serves a data directory's vector stores, so ``llmops ingest`` can hand files to
it instead of opening the store it owns (the embedded engine allows one process per
collection). ``llmops serve`` writes ``<home>/gateway/serving.json`` (its URL and pid) once it
listens and removes it when it stops; a reader trusts it only while that process lives."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def serving_file(home: Path) -> Path:
    return home / "gateway" / "serving.json"


def announce_gateway(home: Path, url: str) -> Path:
    path = serving_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    os.replace(tmp, path)
    return path


def withdraw_gateway(home: Path) -> None:
    path = serving_file(home)
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def serving_gateway(home: Path) -> str | None:
    """The URL of the live gateway that announced itself for ``home``; None if none."""
    try:
        data = json.loads(serving_file(home).read_text())
        pid, url = int(data["pid"]), str(data["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return url
