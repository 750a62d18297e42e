"""Counters shared by every gateway replica, in Redis, updated by atomic Lua scripts.

One script call per admission (all checks of key and team at once, all or nothing) and one
per completion (release leases, reconcile tokens). Time comes from Redis (``TIME``), so the
replicas' clocks do not matter. Every call is bounded by short socket timeouts; errors are
the caller's to turn into the configured policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from gateway._limits_config import BudgetPeriod, LimitsConfig
from gateway.limits._plan import (
    BUCKET,
    CONCURRENCY,
    MINUTE_S,
    WINDOW,
    Check,
    Outcome,
    Plan,
    window,
)

# ARGV[1]: member; ARGV[2]: per check "kind,limit,param;" (static, built once per plan);
# ARGV[3]: per check "cost,window_ms;" (per request). Bucket param: refill period in ms;
# concurrency param: lease in ms; window: window_ms is the time until the window ends (the key
# carries the window id). Few, pre-encoded arguments keep the client's encoding cost low.
# Returns {allowed, refused index, retry ms, too_large, remaining...}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local kinds, limits, params, costs = {}, {}, {}, {}
local n = 0
for kind, limit, param in string.gmatch(ARGV[2], '(%a),([%d.]+),([%d.]+);') do
  n = n + 1
  kinds[n], limits[n], params[n] = kind, tonumber(limit), tonumber(param)
end
local j = 0
for cost, wms in string.gmatch(ARGV[3], '(%d+),(%d+);') do
  j = j + 1
  costs[j] = tonumber(cost)
  if kinds[j] == 'w' then params[j] = tonumber(wms) end
end
local rem = {}
local lv = {}
for i = 1, n do
  local kind, limit, param, cost, key = kinds[i], limits[i], params[i], costs[i], KEYS[i]
  if kind == 'b' then
    local v = redis.call('HMGET', key, 'l', 't')
    local level, ts = tonumber(v[1]), tonumber(v[2])
    local rate = limit / param
    if level == nil then level = limit else level = math.min(limit, level + (now - ts) * rate) end
    lv[i] = level
    rem[i] = tostring(level)
    if level < cost then
      local too = 0
      if cost > limit then too = 1 end
      return {0, i, math.ceil((cost - level) / rate), too, unpack(rem)}
    end
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local c = redis.call('ZCARD', key)
    rem[i] = tostring(limit - c)
    if c + 1 > limit then return {0, i, 1000, 0, unpack(rem)} end
  else
    local used = tonumber(redis.call('GET', key) or '0')
    rem[i] = tostring(limit - used)
    if used + cost > limit then
      local too = 0
      if cost > limit then too = 1 end
      return {0, i, param, too, unpack(rem)}
    end
  end
end
for i = 1, n do
  local kind, limit, param, cost, key = kinds[i], limits[i], params[i], costs[i], KEYS[i]
  if kind == 'b' then
    local level = lv[i] - cost
    redis.call('HSET', key, 'l', tostring(level), 't', now)
    redis.call('PEXPIRE', key, param + 1000)
    rem[i] = tostring(level)
  elseif kind == 'c' then
    redis.call('ZADD', key, now + param, member)
    redis.call('PEXPIRE', key, param)
    rem[i] = tostring(tonumber(rem[i]) - 1)
  else
    redis.call('INCRBY', key, cost)
    redis.call('PEXPIRE', key, param + 60000)
    rem[i] = tostring(tonumber(rem[i]) - cost)
  end
end
return {1, 0, 0, 0, unpack(rem)}
"""

# ARGV[1]: member; ARGV[2]: per key "kind,limit,param,delta;": release the lease, or move a
# token count by delta (actual - reserved).
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local i = 0
for kind, limit, param, delta in string.gmatch(ARGV[2], '(%a),([%d.]+),([%d.]+),(-?%d+);') do
  i = i + 1
  local key = KEYS[i]
  limit, param, delta = tonumber(limit), tonumber(param), tonumber(delta)
  if kind == 'c' then
    redis.call('ZREM', key, member)
  elseif kind == 'b' then
    local v = redis.call('HMGET', key, 'l', 't')
    local level, ts = tonumber(v[1]), tonumber(v[2])
    if level ~= nil then
      local rate = limit / param
      level = math.min(limit, math.min(limit, level + (now - ts) * rate) - delta)
      redis.call('HSET', key, 'l', tostring(level), 't', now)
      redis.call('PEXPIRE', key, param + 1000)
    end
  elseif redis.call('EXISTS', key) == 1 then
    local used = redis.call('INCRBY', key, delta)
    if used < 0 then redis.call('SET', key, 0, 'KEEPTTL') end
  end
end
return 1
"""

_BUCKET_MS = int(MINUTE_S * 1000)


@dataclass(slots=True)
class _Prepared:
    """A plan's script arguments, built once; per request only costs and windows change."""

    keys: list[bytes]
    spec: bytes
    dynamic: list[tuple[Check, BudgetPeriod | None]]  # (check, window period)
    window_keys: list[tuple[int, str]]  # (key index, key prefix without the window id)


class RedisLimiter:
    def __init__(self, cfg: LimitsConfig) -> None:
        rc = cfg.redis
        self.lease_ms = int(cfg.concurrency_lease_s * 1000)
        self.pool = BlockingConnectionPool.from_url(
            rc.url,
            max_connections=rc.max_connections,
            timeout=rc.socket_timeout_s,
            socket_timeout=rc.socket_timeout_s,
            socket_connect_timeout=rc.connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self.client = Redis(connection_pool=self.pool)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)
        self._prepared: dict[int, tuple[Plan, _Prepared]] = {}

    def _prepare(self, plan: Plan) -> _Prepared:
        hit = self._prepared.get(id(plan))
        if hit is not None and hit[0] is plan:
            return hit[1]
        spec = []
        for c in plan.checks:
            param = {BUCKET: _BUCKET_MS, CONCURRENCY: self.lease_ms}.get(c.kind, 0)
            spec.append(f"{c.kind},{c.limit},{param};")
        prep = _Prepared(
            keys=[c.key.encode() for c in plan.checks],
            spec="".join(spec).encode(),
            dynamic=[(c, c.period if c.kind == WINDOW else None) for c in plan.checks],
            window_keys=[(i, c.key) for i, c in enumerate(plan.checks) if c.kind == WINDOW],
        )  # fmt: skip
        if len(self._prepared) > 10_000:
            self._prepared.clear()
        self._prepared[id(plan)] = (plan, prep)
        return prep

    async def _call(self, script: Any, keys: list[Any], *argv: Any) -> Any:
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *argv)
        except NoScriptError:  # Redis restarted and lost its script cache
            script.sha = await self.client.script_load(script.script)
            return await self.client.evalsha(script.sha, len(keys), *keys, *argv)

    async def acquire(
        self, plan: Plan, member: str, tokens: int, micro_usd: int = 0
    ) -> tuple[Outcome, list[str]]:
        prep = self._prepare(plan)
        dyn = []
        keys: list[Any] = prep.keys
        if prep.window_keys:
            keys = keys.copy()
        for i, (check, period) in enumerate(prep.dynamic):
            wms = 0
            if period is not None:
                wid, left_s = window(period)
                keys[i] = keys[i] + wid.encode()
                wms = math.ceil(left_s * 1000)
            dyn.append(f"{check.cost(tokens, micro_usd)},{wms};")
        res = await self._call(self._acquire, keys, member, prep.spec, "".join(dyn))
        remaining = [float(x) for x in res[4:]]
        used = [k.decode() for k in keys] if prep.window_keys else [c.key for c in plan.checks]
        if res[0] == 1:
            return Outcome(True, remaining), used
        return Outcome(False, remaining, int(res[1]) - 1, int(res[2]) / 1000, bool(res[3])), used

    @staticmethod
    def _release_args(
        plan: Plan, keys: list[str], member: str, token_delta: int, usd_delta: int = 0
    ) -> tuple[list[str], str, str] | None:
        rkeys: list[str] = []
        spec: list[str] = []
        for c, key in zip(plan.checks, keys, strict=True):
            if c.kind == CONCURRENCY:
                rkeys.append(key)
                spec.append(f"c,{c.limit},0,0;")
                continue
            delta = token_delta if c.counts_tokens else usd_delta if c.counts_usd else 0
            if delta:
                rkeys.append(key)
                spec.append(f"{c.kind},{c.limit},{_BUCKET_MS},{delta};")
        return (rkeys, member, "".join(spec)) if rkeys else None

    async def release(
        self, plan: Plan, keys: list[str], member: str, token_delta: int, usd_delta: int = 0
    ) -> None:
        args = self._release_args(plan, keys, member, token_delta, usd_delta)
        if args is not None:
            await self._call(self._release, args[0], args[1], args[2])

    async def release_many(self, items: list[tuple[Plan, list[str], str, int, int]]) -> None:
        """Several releases in one pipelined round trip (not a transaction: each is atomic)."""
        calls = [a for it in items if (a := self._release_args(*it)) is not None]
        if not calls:
            return
        if len(calls) == 1:
            await self._call(self._release, calls[0][0], calls[0][1], calls[0][2])
            return
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            for rkeys, member, spec in calls:
                pipe.evalsha(self._release.sha, len(rkeys), *rkeys, member, spec)
            results = await pipe.execute(raise_on_error=False)
            calls = [c for c, r in zip(calls, results, strict=True) if isinstance(r, NoScriptError)]
            if not calls:
                return
            self._release.sha = await self.client.script_load(self._release.script)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.disconnect()
