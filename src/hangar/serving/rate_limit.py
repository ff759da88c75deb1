"""Per-caller rate limits: ``rate_per_minute`` requests per caller per rolling minute.

A caller is the principal once the server authenticates requests, and the client address until
then. Two stores:

- ``LocalRateLimiter``: a token bucket per caller in this worker's memory. With N workers a
  caller can get up to N × the rate (each worker counts alone); the docs say so.
- ``RedisRateLimiter``: one token bucket per caller in Redis, updated atomically by a Lua
  script, so every worker (and every host) shares the count.

``acquire`` answers ``(allowed, retry_after_seconds)``.
"""

from __future__ import annotations

import math
import time

from hangar.errors import require

_MAX_CALLERS = 100_000  # buckets kept in memory; the least recently seen are forgotten first


class LocalRateLimiter:
    shared = False

    def __init__(self, rate_per_minute: int, clock=time.monotonic):
        self.capacity = float(rate_per_minute)
        self.refill_per_s = rate_per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, caller: str) -> tuple[bool, float]:
        return self.acquire_now(caller)

    def acquire_now(self, caller: str) -> tuple[bool, float]:
        now = self._clock()
        tokens, last = self._buckets.pop(caller, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_s)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            allowed, wait = True, 0.0
        else:
            self._buckets[caller] = (tokens, now)
            allowed, wait = False, (1.0 - tokens) / self.refill_per_s
        if len(self._buckets) > _MAX_CALLERS:
            self._buckets.pop(next(iter(self._buckets)))
        return allowed, wait

    async def close(self) -> None:
        pass


_TOKEN_BUCKET = """
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * refill)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / refill
end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, math.ceil(capacity / refill) + 1)
return {allowed, tostring(wait)}
"""


class RedisRateLimiter:
    """Token buckets in Redis (server time, one atomic script per request)."""

    shared = True

    def __init__(self, url: str, rate_per_minute: int, prefix: str = "hangar:rl"):
        redis_asyncio = require("redis.asyncio", "redis")
        self.capacity = float(rate_per_minute)
        self.refill_per_s = rate_per_minute / 60.0
        self.prefix = prefix
        self._client = redis_asyncio.from_url(url)
        self._script = self._client.register_script(_TOKEN_BUCKET)

    async def acquire(self, caller: str) -> tuple[bool, float]:
        allowed, wait = await self._script(keys=[f"{self.prefix}:{caller}"], args=[self.capacity, self.refill_per_s])
        return bool(int(allowed)), float(wait)

    async def close(self) -> None:
        await self._client.aclose()


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))


def make_rate_limiter(rate_per_minute: int | None, redis_url: str | None, prefix: str = "hangar:rl"):
    if not rate_per_minute:
        return None
    if redis_url:
        return RedisRateLimiter(redis_url, rate_per_minute, prefix=prefix)
    return LocalRateLimiter(rate_per_minute)
