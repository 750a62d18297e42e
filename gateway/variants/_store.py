"""Where the live weights and rollbacks are kept, so that neither a restart nor a second
gateway undoes them: a JSON file on one host, Redis (the limits' instance) for several.

The state of an alias records the config weights it started from. When the config still says
the same, the stored state wins (a rollback stays rolled back after a restart); when someone
changed the config's weights, the config wins and the stored state starts again from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis

from gateway._limits_config import RedisLimitsConfig
from gateway.variants._window import SLOTS, SlidingWindow, Tally


@dataclass(slots=True)
class AliasState:
    weights: dict[str, float]
    config_weights: dict[str, float]
    rolled_back: dict[str, dict[str, Any]] = field(default_factory=dict)
    # When a variant's weight was set again by hand: the guard reads only later requests.
    reset_at: dict[str, float] = field(default_factory=dict)
    updated_at: float = field(default_factory=time.time)
    updated_by: str = "config"

    def as_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "config_weights": self.config_weights,
            "rolled_back": self.rolled_back,
            "reset_at": self.reset_at,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AliasState:
        return cls(
            weights={k: float(v) for k, v in d["weights"].items()},
            config_weights={k: float(v) for k, v in d.get("config_weights", {}).items()},
            rolled_back=dict(d.get("rolled_back") or {}),
            reset_at={k: float(v) for k, v in (d.get("reset_at") or {}).items()},
            updated_at=float(d.get("updated_at", 0.0)),
            updated_by=str(d.get("updated_by", "config")),
        )


class StateStore(Protocol):
    shared: bool

    async def load(self, alias: str) -> AliasState | None: ...

    async def save(self, alias: str, state: AliasState) -> None: ...

    async def push(self, alias: str, window: SlidingWindow) -> None: ...

    async def window_totals(
        self, alias: str, window: SlidingWindow, variants: tuple[str, ...], now: float
    ) -> dict[str, list[Tally]]: ...

    async def close(self) -> None: ...


class FileStateStore:
    """One JSON file for all aliases, written atomically off the event loop."""

    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    async def load(self, alias: str) -> AliasState | None:
        data = await asyncio.to_thread(self._read)
        raw = data.get(alias)
        return AliasState.from_dict(raw) if isinstance(raw, dict) else None

    def _write(self, alias: str, state: AliasState) -> None:
        data = self._read()
        data[alias] = state.as_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".variant-state.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    async def save(self, alias: str, state: AliasState) -> None:
        async with self._lock:
            await asyncio.to_thread(self._write, alias, state)

    async def push(self, alias: str, window: SlidingWindow) -> None:
        window.drain()  # one process: the local window is the whole window

    async def window_totals(
        self, alias: str, window: SlidingWindow, variants: tuple[str, ...], now: float
    ) -> dict[str, list[Tally]]:
        return {v: window.slots(v, now) for v in variants}

    async def close(self) -> None:
        return None


class RedisStateStore:
    """State as one JSON string per alias; window counts as one hash per (variant, slot),
    added to with HINCRBY by every gateway and expiring after two windows."""

    shared = True

    def __init__(self, cfg: RedisLimitsConfig, prefix: str = "llmops:variants:") -> None:
        self.redis: Redis = Redis.from_url(
            cfg.url,
            socket_timeout=cfg.socket_timeout_s,
            socket_connect_timeout=cfg.connect_timeout_s,
            decode_responses=True,
        )
        self.prefix = prefix

    async def load(self, alias: str) -> AliasState | None:
        raw = await self.redis.get(f"{self.prefix}state:{alias}")
        return AliasState.from_dict(json.loads(raw)) if raw else None

    async def save(self, alias: str, state: AliasState) -> None:
        await self.redis.set(f"{self.prefix}state:{alias}", json.dumps(state.as_dict()))

    def _slot_key(self, alias: str, variant: str, epoch: int) -> str:
        return f"{self.prefix}w:{alias}:{variant}:{epoch}"

    async def push(self, alias: str, window: SlidingWindow) -> None:
        pending = window.drain()
        if not pending:
            return
        ttl = max(2, int(window.window_s * 2))
        pipe = self.redis.pipeline(transaction=False)
        for (variant, epoch), t in pending.items():
            key = self._slot_key(alias, variant, epoch)
            for f, v in t.to_fields().items():
                if v:
                    pipe.hincrby(key, f, v)
            pipe.expire(key, ttl)
        try:
            await pipe.execute()
        except Exception:
            window.restore(pending)  # not lost: they go out with the next sync
            raise

    async def window_totals(
        self, alias: str, window: SlidingWindow, variants: tuple[str, ...], now: float
    ) -> dict[str, list[Tally]]:
        epochs = list(window.epochs(now))
        assert len(epochs) == SLOTS
        pipe = self.redis.pipeline(transaction=False)
        for v in variants:
            for e in epochs:
                pipe.hgetall(self._slot_key(alias, v, e))
        rows = await pipe.execute()
        out: dict[str, list[Tally]] = {}
        for i, v in enumerate(variants):
            out[v] = [
                Tally.from_fields({k: int(x) for k, x in row.items()}) if row else Tally()
                for row in rows[i * SLOTS : (i + 1) * SLOTS]
            ]
        return out

    async def close(self) -> None:
        await self.redis.aclose()
