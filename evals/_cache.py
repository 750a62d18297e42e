"""On-disk cache of generations and judge scores, which is also what makes runs resumable.

Keys are SHA-256 digests of canonical JSON of everything that determines a result (prompt version,
model, parameters, input, seed, repeat index; for judges the metric, judge model and the judged
texts). Each entry is one small file written atomically (temp file + rename) as soon as it exists,
so an interrupted run loses at most the requests in flight, and several processes may share the
folder. Failures are never cached: a re-run retries them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from common import llmops_home


def default_cache_dir() -> Path:
    return llmops_home() / "evals" / "cache"


def cache_key(kind: str, parts: dict[str, Any]) -> str:
    blob = json.dumps(
        {"kind": kind, **parts},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class DiskCache:
    """``get``/``put`` JSON objects by key; ``None`` root disables caching."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            self.misses += 1
            return None
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return data if isinstance(data, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(value, f, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
