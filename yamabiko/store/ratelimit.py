"""Request rate limits: token buckets per user and per tenant.

A request is admitted only when both its user's and its tenant's bucket hold a token,
and then takes one from each; a refused request takes none, so a client that retries
after ``retryAfterMs`` is admitted. The in-memory limiter serves one node; the Redis one
(shared by all nodes, one atomic script) comes with the scale-out store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    """Guarantees: ``admit`` is atomic per (tenant, user) pair; it returns 0 when the
    request is admitted, else the milliseconds after which a retry will be admitted
    if nothing else is spent meanwhile."""

    async def admit(self, tenant_id: str, user: str) -> int: ...


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class MemoryRateLimiter:
    """Token buckets in this process's memory."""

    def __init__(
        self,
        *,
        user_rate: float,
        user_burst: int,
        tenant_rate: float,
        tenant_burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.user_rate = user_rate
        self.user_burst = user_burst
        self.tenant_rate = tenant_rate
        self.tenant_burst = tenant_burst
        self._clock = clock
        self._users: dict[Hashable, _Bucket] = {}
        self._tenants: dict[Hashable, _Bucket] = {}
        self._admitted = 0

    async def admit(self, tenant_id: str, user: str) -> int:
        return self.admit_now(tenant_id, user)

    def admit_now(self, tenant_id: str, user: str) -> int:
        now = self._clock()
        user_bucket = self._refill(
            self._users, (tenant_id, user), self.user_rate, self.user_burst, now
        )
        tenant_bucket = self._refill(
            self._tenants, tenant_id, self.tenant_rate, self.tenant_burst, now
        )
        wait = max(_wait_s(user_bucket, self.user_rate), _wait_s(tenant_bucket, self.tenant_rate))
        if wait > 0:
            return max(1, math.ceil(wait * 1000))
        user_bucket.tokens -= 1
        tenant_bucket.tokens -= 1
        self._admitted += 1
        if self._admitted % 10_000 == 0:
            self._prune(now)
        return 0

    def _refill(
        self, buckets: dict[Hashable, _Bucket], key: Hashable, rate: float, burst: int, now: float
    ) -> _Bucket:
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(float(burst), now)
            return bucket
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket

    def _prune(self, now: float) -> None:
        # A bucket that would be full again holds nothing worth keeping.
        for buckets, rate, burst in (
            (self._users, self.user_rate, self.user_burst),
            (self._tenants, self.tenant_rate, self.tenant_burst),
        ):
            for key in [
                k for k, b in buckets.items() if b.tokens + (now - b.updated) * rate >= burst
            ]:
                del buckets[key]


def _wait_s(bucket: _Bucket, rate: float) -> float:
    missing = 1.0 - bucket.tokens
    return missing / rate if missing > 0 else 0.0


# Both buckets refilled, checked and taken from in one step, on Redis's clock (so nodes
# whose clocks disagree still agree on the bucket). Keys vanish once they would be full.
_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, rate, burst)
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or ts == nil then return burst end
  return math.min(burst, tokens + math.max(0, now - ts) * rate)
end
local ur, ub = tonumber(ARGV[1]), tonumber(ARGV[2])
local tr, tb = tonumber(ARGV[3]), tonumber(ARGV[4])
local u, tn = level(KEYS[1], ur, ub), level(KEYS[2], tr, tb)
local wait = 0
if u < 1 then wait = math.max(wait, (1 - u) / ur) end
if tn < 1 then wait = math.max(wait, (1 - tn) / tr) end
if wait > 0 then return math.max(1, math.ceil(wait * 1000)) end
redis.call('HSET', KEYS[1], 'tokens', u - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(ub / ur * 1000) + 1000)
redis.call('HSET', KEYS[2], 'tokens', tn - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[2], math.ceil(tb / tr * 1000) + 1000)
return 0
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every node: one Lua script admits atomically.

    If Redis cannot be reached, ``admit`` raises (the request fails with -32603 and the
    error is logged): limits are never silently lifted.
    """

    def __init__(
        self,
        client: Redis,
        *,
        user_rate: float,
        user_burst: int,
        tenant_rate: float,
        tenant_burst: int,
        prefix: str = "yamabiko:",
    ) -> None:
        self._client = client
        self._script = client.register_script(_ADMIT_LUA)
        self._args = (user_rate, user_burst, tenant_rate, tenant_burst)
        self._prefix = prefix

    async def admit(self, tenant_id: str, user: str) -> int:
        # One hash tag per tenant: both keys live in the same cluster slot.
        keys = [
            f"{self._prefix}rl:{{{tenant_id}}}:u:{user}",
            f"{self._prefix}rl:{{{tenant_id}}}:t",
        ]
        return int(await self._script(keys=keys, args=list(self._args)))
