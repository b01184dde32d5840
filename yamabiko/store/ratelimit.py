"""Request rate limits: token buckets per user and per tenant.

A request is admitted only when both its user's and its tenant's bucket hold a token,
and then takes one from each; a refused request takes none, so a client that retries
after ``retryAfterMs`` is admitted. :class:`MemoryRateLimiter` serves one node;
:class:`RedisRateLimiter` is shared by every node (one atomic script, on Redis's clock).

A tenant's own ``rateLimits`` (its row in the store) replace the server's defaults for
its tenant bucket: the caller passes them to ``admit`` as ``tenant_rate`` and
``tenant_burst``; :class:`TenantRateLimits` reads them from the store, cached.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Hashable
from typing import Protocol, TypedDict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from yamabiko.protocol.errors import InternalError
from yamabiko.schema.objects import RateLimits, Tenant, TenantId
from yamabiko.store.redis_clients import ThrottledWarning, pooled_client
from yamabiko.store.repositories import Store

log = logging.getLogger(__name__)


class RateLimiterUnavailable(InternalError):
    """The limiter could not decide (its Redis did not answer in time, refused the
    connection or failed the script). Nothing was taken from any bucket.

    The limiter never decides for the server whether to admit without it: a server that
    lets this through answers -32603 (fail closed, the limits hold); one that catches it
    may admit and log (fail open). The cause is chained (``__cause__``) for the log; the
    message names neither the URL nor its credentials.
    """

    default_message = "rate limiter unavailable"


class RateLimiter(Protocol):
    """Guarantees: ``admit`` is atomic per (tenant, user) pair (for the Redis limiter,
    across every node sharing its Redis); it returns 0 when the request is admitted
    and took a token from both buckets, else the milliseconds (≥ 1) after which a retry
    will be admitted if nothing else is spent meanwhile, having taken nothing.

    ``cost`` is how many tokens the request takes from each bucket (a cheap message
    takes a fraction of one); the wait returned is until both hold ``cost``. A cost
    above a bucket's burst is taken as the burst, so it can still be admitted.

    ``tenant_rate`` (tokens per second) and ``tenant_burst`` (bucket size), when given,
    replace the defaults for this tenant's bucket: pass the tenant's ``rateLimits``.
    A bucket that holds more than a smaller new burst is cut down to it.

    Failure: a limiter that cannot reach its backend raises
    :class:`RateLimiterUnavailable` rather than guess (see there); rates ≤ 0 or bursts
    < 1 raise ``ValueError``.
    """

    async def admit(
        self,
        tenant_id: str,
        user: str,
        *,
        tenant_rate: float | None = None,
        tenant_burst: int | None = None,
        cost: float = 1.0,
    ) -> int: ...


def check_limits(rate: float, burst: int) -> None:
    """Raise ``ValueError`` unless ``rate`` > 0 tokens/s and ``burst`` ≥ 1 token."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"a rate limit needs a rate > 0 per second, not {rate!r}")
    if burst < 1:
        raise ValueError(f"a rate limit needs a burst of at least 1, not {burst!r}")


def check_cost(cost: float) -> None:
    """Raise ``ValueError`` unless ``cost`` is a finite number of tokens ≥ 0."""
    if not (cost >= 0 and math.isfinite(cost)):
        raise ValueError(f"a request costs a finite number of tokens >= 0, not {cost!r}")


# A billionth of a token: what float rounding may leave a bucket short after exactly
# ``retryAfterMs``. Counting it as there keeps the promise that a retry then is admitted.
_EPSILON = 1e-9


class _Bucket:
    # The bucket remembers the rate and burst it was last refilled with, so pruning
    # judges a tenant with its own limits by those, not by the defaults.
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, tokens: float, now: float, rate: float, burst: int) -> None:
        self.tokens = tokens
        self.updated = now
        self.rate = rate
        self.burst = burst


class MemoryRateLimiter:
    """Token buckets in this process's memory: the embedded default, for one node.

    ``clock`` (seconds, monotonic) is for tests. Buckets that would be full again are
    forgotten every 10,000 admissions, so memory follows the active users.
    """

    def __init__(
        self,
        *,
        user_rate: float,
        user_burst: int,
        tenant_rate: float,
        tenant_burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_limits(user_rate, user_burst)
        check_limits(tenant_rate, tenant_burst)
        self.user_rate = user_rate
        self.user_burst = user_burst
        self.tenant_rate = tenant_rate
        self.tenant_burst = tenant_burst
        self._clock = clock
        self._users: dict[Hashable, _Bucket] = {}
        self._tenants: dict[Hashable, _Bucket] = {}
        self._admitted = 0

    async def admit(
        self,
        tenant_id: str,
        user: str,
        *,
        tenant_rate: float | None = None,
        tenant_burst: int | None = None,
        cost: float = 1.0,
    ) -> int:
        return self.admit_now(
            tenant_id, user, tenant_rate=tenant_rate, tenant_burst=tenant_burst, cost=cost
        )

    def admit_now(
        self,
        tenant_id: str,
        user: str,
        *,
        tenant_rate: float | None = None,
        tenant_burst: int | None = None,
        cost: float = 1.0,
    ) -> int:
        """:meth:`admit` without the coroutine (it never waits)."""
        t_rate = self.tenant_rate if tenant_rate is None else tenant_rate
        t_burst = self.tenant_burst if tenant_burst is None else tenant_burst
        check_limits(t_rate, t_burst)
        now = self._clock()
        user_bucket = _refill(self._users, (tenant_id, user), self.user_rate, self.user_burst, now)
        tenant_bucket = _refill(self._tenants, tenant_id, t_rate, t_burst, now)
        check_cost(cost)
        u_cost, t_cost = min(cost, self.user_burst), min(cost, t_burst)
        wait = max(_wait_s(user_bucket, u_cost), _wait_s(tenant_bucket, t_cost))
        if wait > 0:
            return max(1, math.ceil(wait * 1000))
        user_bucket.tokens -= u_cost
        tenant_bucket.tokens -= t_cost
        self._admitted += 1
        if self._admitted % 10_000 == 0:
            self._prune(now)
        return 0

    def _prune(self, now: float) -> None:
        # A bucket that would be full again holds nothing worth keeping.
        for buckets in (self._users, self._tenants):
            for key in [
                k for k, b in buckets.items() if b.tokens + (now - b.updated) * b.rate >= b.burst
            ]:
                del buckets[key]


def _refill(
    buckets: dict[Hashable, _Bucket], key: Hashable, rate: float, burst: int, now: float
) -> _Bucket:
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = _Bucket(float(burst), now, rate, burst)
        return bucket
    elapsed = max(0.0, now - bucket.updated)
    bucket.tokens = min(float(burst), bucket.tokens + elapsed * rate)
    bucket.updated = now
    bucket.rate = rate
    bucket.burst = burst
    return bucket


def _wait_s(bucket: _Bucket, cost: float) -> float:
    missing = cost - bucket.tokens
    return missing / bucket.rate if missing > _EPSILON else 0.0


# Theory of operation: a bucket is a hash {tokens, ts} where ts is the Redis server's
# time in whole microseconds (an integer below 2^53, so exact in Lua's doubles; Redis
# writes numbers with 17 digits, so tokens round-trip exactly). Its level now is tokens
# plus the refill since ts, capped at burst; a missing key is a full bucket. Both levels
# are read, both checked, and only if both hold ``cost`` tokens (at most a full bucket's
# worth: a cost above the burst waits for a full bucket and then borrows) is ``cost``
# taken from each: the script runs atomically, so concurrent nodes cannot both take the
# last token. Taking sets PEXPIRE to the time the bucket needs to be full again, after
# which the key is indistinguishable from a missing one and may vanish. A refusal writes
# nothing. As in memory, a bucket a billionth of a token short counts as holding one.
#
# One call of the script decides a whole batch of requests of one tenant, in the order
# they arrived (KEYS: user and tenant key per request; ARGV: five numbers per request),
# and answers one number per request.
_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function level(key, rate, burst)
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or ts == nil then return burst end
  return math.min(burst, tokens + math.max(0, now - ts) / 1000000 * rate)
end
local function take(key, tokens, cost, rate, burst)
  local left = tokens - cost
  redis.call('HSET', key, 'tokens', left, 'ts', now)
  redis.call('PEXPIRE', key, math.max(1, math.ceil((burst - left) / rate * 1000)))
end
local out = {}
for i = 1, #KEYS / 2 do
  local a = (i - 1) * 5
  local ur, ub = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local tr, tb = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local cost = tonumber(ARGV[a + 5])
  local ukey, tkey = KEYS[2 * i - 1], KEYS[2 * i]
  local u, tn = level(ukey, ur, ub), level(tkey, tr, tb)
  local un, tneed = math.min(cost, ub), math.min(cost, tb)
  local wait = 0
  if u < un - 1e-9 then wait = math.max(wait, (un - u) / ur) end
  if tn < tneed - 1e-9 then wait = math.max(wait, (tneed - tn) / tr) end
  if wait > 0 then
    out[i] = math.max(1, math.ceil(wait * 1000))
  else
    take(ukey, u, cost, ur, ub)
    take(tkey, tn, cost, tr, tb)
    out[i] = 0
  end
end
return out
"""

_MAX_BATCH = 256
"""Requests decided by one run of the script: bounds how long Redis is busy with it."""


class _Waiting:
    """A request waiting for its batch: what the script needs, and its answer."""

    __slots__ = ("args", "future", "keys")

    def __init__(
        self, keys: tuple[str, str], args: tuple[float, ...], future: asyncio.Future[int]
    ) -> None:
        self.keys = keys
        self.args = args
        self.future = future


class RedisRateLimiter:
    """Token buckets in Redis, shared by every node: a Lua script (loaded once, run
    with EVALSHA) refills, checks and takes from both buckets atomically, on the Redis
    server's clock, so nodes whose clocks disagree still agree on every bucket.

    Requests are decided in batches, not one Redis round trip each: an ``admit`` joins
    the batch being gathered, and while one batch is with Redis the next gathers. A
    batch is one pipeline holding one script call per tenant (its requests in arrival
    order), so a burst of 2,000 requests costs a handful of round trips on one
    connection instead of 2,000 connections (docs/deployment.md, "Shared services under
    load"). Alone, a request still takes one round trip: the decision stays exact
    across nodes.

    Keys: ``{prefix}rl:u:{{tenant}}:{user}`` and ``{prefix}rl:t:{{tenant}}``. The tenant
    is wrapped in a hash tag (literal braces), so a user's and its tenant's bucket share
    a cluster slot, as do all the keys of one script call; ``prefix`` must therefore
    contain no braces. Idle buckets expire once they would be full again.

    If Redis does not answer within ``timeout_s`` (or refuses, or fails), ``admit``
    raises :class:`RateLimiterUnavailable`: limits are never silently lifted. Failures
    are logged at WARNING, at most once per 10 s.
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
        timeout_s: float | None = 1.0,
    ) -> None:
        check_limits(user_rate, user_burst)
        check_limits(tenant_rate, tenant_burst)
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"a rate limit key prefix cannot contain braces: {prefix!r}")
        self.user_rate = user_rate
        self.user_burst = user_burst
        self.tenant_rate = tenant_rate
        self.tenant_burst = tenant_burst
        self.prefix = prefix
        self._client = client
        self._owns_client = False
        self._timeout_s = timeout_s
        self._script = client.register_script(_ADMIT_LUA)
        self._waiting: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None
        self._warn = ThrottledWarning(log)
        self.round_trips = 0
        """Batches sent to Redis (for tests and metrics)."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        user_rate: float,
        user_burst: int,
        tenant_rate: float,
        tenant_burst: int,
        prefix: str = "yamabiko:",
        timeout_s: float = 1.0,
        max_connections: int = 4,
    ) -> RedisRateLimiter:
        """A limiter with a client of its own for ``url`` (``redis://``, ``rediss://``,
        ``unix://``), whose connects and replies are bounded by ``timeout_s``; close it
        with :meth:`aclose`. Connects lazily: an unreachable server shows at ``admit``.
        Batches go one at a time, so a small pool is plenty."""
        client = pooled_client(
            url,
            max_connections=max_connections,
            pool_timeout_s=timeout_s,
            socket_timeout_s=timeout_s,
        )
        limiter = cls(
            client,
            user_rate=user_rate,
            user_burst=user_burst,
            tenant_rate=tenant_rate,
            tenant_burst=tenant_burst,
            prefix=prefix,
            timeout_s=timeout_s,
        )
        limiter._owns_client = True
        return limiter

    async def aclose(self) -> None:
        """Closes the client if :meth:`from_url` made it (a client passed in is the
        caller's to close). Idempotent."""
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.wait({sender})
        if self._owns_client:
            await self._client.aclose()

    def keys(self, tenant_id: str, user: str) -> tuple[str, str]:
        """The user's and the tenant's bucket keys."""
        return (
            f"{self.prefix}rl:u:{{{tenant_id}}}:{user}",
            f"{self.prefix}rl:t:{{{tenant_id}}}",
        )

    async def admit(
        self,
        tenant_id: str,
        user: str,
        *,
        tenant_rate: float | None = None,
        tenant_burst: int | None = None,
        cost: float = 1.0,
    ) -> int:
        t_rate = self.tenant_rate if tenant_rate is None else tenant_rate
        t_burst = self.tenant_burst if tenant_burst is None else tenant_burst
        check_limits(t_rate, t_burst)
        check_cost(cost)
        if cost == 0:
            return 0
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        args = (self.user_rate, float(self.user_burst), t_rate, float(t_burst), cost)
        self._waiting.append(_Waiting(self.keys(tenant_id, user), args, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="rate-limiter-batches")
        try:
            # wait_for, not asyncio.timeout: this runs in a connection's reader, which
            # may not be a task yet (server/eager.py).
            return await asyncio.wait_for(asyncio.shield(future), self._timeout_s)
        except TimeoutError as exc:
            # The batch may still run and take a token: the caller refuses or admits
            # this request without one, never twice.
            self._warn("rate limiter: Redis did not answer in time", exc)
            raise RateLimiterUnavailable(
                "rate limiter unavailable: Redis did not answer (TimeoutError)"
            ) from exc

    async def _send(self) -> None:
        """Send the waiting requests in batches, one batch at a time, until none wait."""
        # Let the requests that arrive in this turn of the loop join the first batch.
        await asyncio.sleep(0)
        while self._waiting:
            batch = self._waiting[:_MAX_BATCH]
            del self._waiting[:_MAX_BATCH]
            try:
                results = await self._decide(batch)
            except (RedisError, OSError, TimeoutError) as exc:
                # OSError and TimeoutError: a socket failing outside redis-py's wrappers.
                self._warn("rate limiter: Redis failed", exc)
                error = RateLimiterUnavailable(
                    f"rate limiter unavailable: Redis did not answer ({type(exc).__name__})"
                )
                error.__cause__ = exc
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(error)
                continue
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(result)

    async def _decide(self, batch: list[_Waiting]) -> list[int]:
        by_tenant: dict[str, list[int]] = {}
        for index, waiting in enumerate(batch):
            by_tenant.setdefault(waiting.keys[1], []).append(index)
        self.round_trips += 1
        async with self._client.pipeline(transaction=False) as pipe:
            for indexes in by_tenant.values():
                keys = [key for i in indexes for key in batch[i].keys]
                args = [arg for i in indexes for arg in batch[i].args]
                await self._script(keys=keys, args=args, client=pipe)
            replies = await pipe.execute()
        results = [0] * len(batch)
        for indexes, reply in zip(by_tenant.values(), replies, strict=True):
            for i, value in zip(indexes, reply, strict=True):
                results[i] = int(value)
        return results


class TenantOverrides(TypedDict, total=False):
    """Keyword arguments of :meth:`RateLimiter.admit` that replace the tenant defaults."""

    tenant_rate: float
    tenant_burst: int


class TenantRateLimits:
    """Each tenant's store row, cached for ``ttl_s`` so a busy tenant costs one query
    per few seconds: its own ``rateLimits`` (:meth:`get`; None when the tenant has no
    row or no limits of its own, so the defaults apply), and the row itself
    (:meth:`tenant`: system prompt, default model, for ``chat/send``). A change through
    the admin API applies at once on the node that made it (:meth:`forget`) and on
    every other within ``ttl_s``. Feed :meth:`get` to :meth:`RateLimiter.admit`::

        limits = await tenant_limits.get(tenant_id)
        await limiter.admit(tenant_id, user, **TenantRateLimits.overrides(limits))

    ``clock`` (seconds, monotonic) is for tests.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._loading: dict[str, asyncio.Future[Tenant | None]] = {}

    async def get(self, tenant_id: str) -> RateLimits | None:
        tenant = await self.tenant(tenant_id)
        return tenant.rate_limits if tenant is not None else None

    async def tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant's row as read at most ``ttl_s`` ago; None if it has none."""
        now = self._clock()
        cached = self._cache.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        # A burst of a tenant's requests on a cold cache (a fleet reconnecting) makes
        # one query, not one each.
        loading = self._loading.get(tenant_id)
        if loading is None:
            loading = asyncio.ensure_future(self._store.tenants.get(TenantId(tenant_id)))
            self._loading[tenant_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(tenant_id, None))
        tenant = await asyncio.shield(loading)
        self._cache[tenant_id] = (now, tenant)
        if len(self._cache) > 10_000:  # forget the stale ones, not the busy ones
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._ttl_s}
        return tenant

    def forget(self, tenant_id: str) -> None:
        """Drop the cached limits (this node just changed them): the next ``get`` reads."""
        self._cache.pop(tenant_id, None)

    @staticmethod
    def overrides(limits: RateLimits | None) -> TenantOverrides:
        """``tenant_rate`` and ``tenant_burst`` for :meth:`RateLimiter.admit` (none for
        a tenant without limits of its own)."""
        if limits is None:
            return {}
        return {"tenant_rate": limits.requests_per_second, "tenant_burst": limits.burst}
