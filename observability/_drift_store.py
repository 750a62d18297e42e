"""Append-only store of sampled live queries (text and/or embedding) for drift monitoring.

JSON lines, one file per day and writer process (``samples-YYYYMMDD-<host>-<pid>.jsonl``), so
several gateway processes on one host never interleave writes and old days are deleted whole.
Embeddings are little-endian float32, base64 encoded. ``llmops monitor drift`` reads a window.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import numpy as np

RESULTS_DIR = "results"


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    model: str | None
    route: str | None
    prompt: str | None
    text: str | None
    embedding: np.ndarray | None
    embedding_model: str | None


def encode_vector(v: np.ndarray) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def decode_vector(s: str) -> np.ndarray:
    import numpy as np

    return np.frombuffer(base64.b64decode(s), dtype="<f4")


def _dim(v: np.ndarray) -> int:
    import numpy as np

    return int(np.asarray(v).shape[-1])


class DriftStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._writer_id = f"{socket.gethostname()}-{os.getpid()}"

    @property
    def results_dir(self) -> Path:
        return self.root / RESULTS_DIR

    def _path(self, ts: float) -> Path:
        day = time.strftime("%Y%m%d", time.gmtime(ts))
        return self.root / f"samples-{day}-{self._writer_id}.jsonl"

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write records (``ts``, ``model``, ``route``, ``prompt``, ``text``, ``embedding``...)."""
        self.root.mkdir(parents=True, exist_ok=True)
        by_file: dict[Path, list[bytes]] = {}
        n = 0
        for r in records:
            rec = dict(r)
            emb = rec.pop("embedding", None)
            if emb is not None:
                rec["emb"] = encode_vector(emb)
                rec["dim"] = _dim(emb)
            by_file.setdefault(self._path(float(rec["ts"])), []).append(orjson.dumps(rec) + b"\n")
            n += 1
        for path, lines in by_file.items():
            with path.open("ab") as f:
                f.write(b"".join(lines))
        return n

    def files(self) -> list[Path]:
        return sorted(self.root.glob("samples-*.jsonl")) if self.root.is_dir() else []

    def read(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        model: str | None = None,
        route: str | None = None,
        prompt: str | None = None,
    ) -> list[Sample]:
        """Samples in ``[since, until)``, optionally only one model, route or prompt."""
        return list(self._iter(since, until, model, route, prompt))

    def _iter(
        self,
        since: float | None,
        until: float | None,
        model: str | None,
        route: str | None,
        prompt: str | None,
    ) -> Iterator[Sample]:
        first_day = time.strftime("%Y%m%d", time.gmtime(since)) if since is not None else None
        for path in self.files():
            day = path.name.split("-")[1]
            if first_day is not None and day < first_day:
                continue
            for line in path.read_bytes().splitlines():
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line after a crash
                ts = float(rec.get("ts", 0))
                if (since is not None and ts < since) or (until is not None and ts >= until):
                    continue
                if model is not None and rec.get("model") != model:
                    continue
                if route is not None and rec.get("route") != route:
                    continue
                if prompt is not None and rec.get("prompt") != prompt:
                    continue
                emb = rec.get("emb")
                yield Sample(
                    ts=ts,
                    model=rec.get("model"),
                    route=rec.get("route"),
                    prompt=rec.get("prompt"),
                    text=rec.get("text"),
                    embedding=decode_vector(emb) if emb else None,
                    embedding_model=rec.get("emb_model"),
                )

    def prune(self, retention_days: int, now: float | None = None) -> int:
        """Delete day files older than the retention; returns how many were removed."""
        cutoff = time.strftime("%Y%m%d", time.gmtime((now or time.time()) - retention_days * 86400))
        removed = 0
        for path in self.files():
            if path.name.split("-")[1] < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
