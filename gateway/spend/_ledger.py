"""Spend records by hour: per (key, team, model, variant, prompt), USD, requests and tokens.

Requests add into a pending table (one dict update each); a background flush moves it into
the store: this gateway's memory, or Redis (one hash per hour, shared by every replica, kept
``retention_days``). Reports group the rows by any one of the five dimensions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from gateway._limits_config import RedisLimitsConfig

DIMENSIONS = ("key", "team", "model", "variant", "prompt")
METRICS = ("usd", "requests", "prompt_tokens", "completion_tokens", "estimated")
IDLE = "(idle)"  # the key of a replica's idle cost rows
_SEP = "\x1f"

Row = tuple[str, str, str, str, str]  # key, team, model, variant, prompt
Table = dict[tuple[int, Row], list[float]]  # (hour, row) -> METRICS


def hour_of(ts: float) -> int:
    return math.floor(ts / 3600)


def add(table: Table, hour: int, row: Row, values: Iterable[float]) -> None:
    cur = table.get((hour, row))
    if cur is None:
        table[(hour, row)] = list(values)
    else:
        for i, v in enumerate(values):
            cur[i] += v


def group(table: Table, by: str, since_hour: int) -> dict[str, dict[str, float]]:
    """USD, requests and tokens per value of ``by`` over the hours from ``since_hour``."""
    d = DIMENSIONS.index(by)
    out: dict[str, dict[str, float]] = {}
    for (hour, row), values in table.items():
        if hour < since_hour:
            continue
        name = IDLE + " " + row[2] if row[0] == IDLE else row[d]
        agg = out.setdefault(name, dict.fromkeys(METRICS, 0.0))
        for m, v in zip(METRICS, values, strict=True):
            agg[m] += v
    return out


class MemoryLedger:
    """This gateway's own records (lost on restart; use Redis for several replicas)."""

    def __init__(self, retention_days: int) -> None:
        self.table: Table = {}
        self.retention_hours = retention_days * 24

    async def push(self, pending: Table) -> None:
        for (hour, row), values in pending.items():
            add(self.table, hour, row, values)
        oldest = hour_of(time.time()) - self.retention_hours
        for k in [k for k in self.table if k[0] < oldest]:
            del self.table[k]

    async def read(self, since_hour: int) -> Table:
        return {k: v for k, v in self.table.items() if k[0] >= since_hour}

    async def close(self) -> None:
        return None


class RedisLedger:
    """The records of every gateway on one Redis: ``{prefix}spend:{hour}`` hashes."""

    def __init__(self, cfg: RedisLimitsConfig, retention_days: int) -> None:
        self.redis: Redis = Redis.from_url(
            cfg.url, socket_timeout=cfg.socket_timeout_s * 4,
            socket_connect_timeout=cfg.connect_timeout_s,
        )  # fmt: skip
        self.prefix = cfg.key_prefix + "spend:"
        self.ttl_s = retention_days * 86400 + 3600

    async def push(self, pending: Table) -> None:
        pipe = self.redis.pipeline(transaction=False)
        hours = set()
        for (hour, row), values in pending.items():
            key = f"{self.prefix}{hour}"
            hours.add(key)
            base = _SEP.join(row) + _SEP
            for m, v in zip(METRICS, values, strict=True):
                if v:
                    pipe.hincrbyfloat(key, base + m, v)
        for key in hours:
            pipe.expire(key, self.ttl_s)
        await pipe.execute()

    async def read(self, since_hour: int) -> Table:
        now = hour_of(time.time())
        hours = list(range(since_hour, now + 1))
        pipe = self.redis.pipeline(transaction=False)
        for h in hours:
            pipe.hgetall(f"{self.prefix}{h}")
        out: Table = {}
        for hour, fields in zip(hours, await pipe.execute(), strict=True):
            for field, value in (fields or {}).items():
                parts = field.decode().split(_SEP)
                if len(parts) != len(DIMENSIONS) + 1 or parts[-1] not in METRICS:
                    continue
                row: Any = tuple(parts[:-1])
                cur = out.setdefault((hour, row), [0.0] * len(METRICS))
                cur[METRICS.index(parts[-1])] += float(value)
        return out

    async def close(self) -> None:
        await self.redis.aclose()
