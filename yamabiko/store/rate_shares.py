"""Local shares of the shared rate-limit buckets: most requests decided in process.

:class:`RedisRateLimiter` keeps every decision exact across nodes, but each request
waits for its batch's Redis round trip, runs the Lua script once on Redis (measured:
~12 us of Redis CPU per request) and holds one of its session's running slots while it
waits. :class:`LocalShareRateLimiter` takes tokens from the shared buckets in chunks
(``share_s`` seconds of the smaller rate, at most a quarter of the smaller burst) and
spends them in process, so one Redis round trip serves a chunk of requests and a
request that finds its share holding enough is admitted without suspending.

Guarantees (a :class:`~yamabiko.store.ratelimit.RateLimiter`): no more is ever admitted
than the shared buckets allow, since every token spent here was first taken from them.
The price: a worker may hold up to one chunk per (tenant, user) it has seen in the last
``share_ttl_s``, taken but unspent, so near the limit a user can be refused while another
worker holds a few of its tokens (at most workers x chunk, docs/decisions/0047). A
request its share cannot cover asks for a chunk; if the buckets hold less than a chunk
it asks for exactly its cost, so the answer and ``retryAfterMs`` near the limit are the
exact limiter's. Shares expire after ``share_ttl_s`` (the tokens are lost: the limits
only get stricter), which bounds memory.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Final

from yamabiko.store.ratelimit import RateLimiter, RedisRateLimiter, check_cost, check_limits

SHARE_S: Final = 0.05
"""A chunk is this many seconds of the smaller of the user's and the tenant's rate."""
SHARE_TTL_S: Final = 1.0
"""Unspent tokens of a share are dropped this long after they were taken."""
MAX_WAITS: Final = 4
"""Refills by other requests a request waits for before it asks for its own cost."""
MAX_SHARES: Final = 10_000
"""Past this many (tenant, user) shares, the expired ones are dropped."""


class _Share:
    __slots__ = ("expires", "tokens")

    def __init__(self, tokens: float, expires: float) -> None:
        self.tokens = tokens
        self.expires = expires


class LocalShareRateLimiter:
    """A :class:`RedisRateLimiter` whose tokens are taken in chunks and spent locally
    (see the module docstring). ``clock`` (seconds, monotonic) is for tests."""

    def __init__(
        self,
        shared: RedisRateLimiter,
        *,
        share_s: float = SHARE_S,
        share_ttl_s: float = SHARE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self._share_s = share_s
        self._ttl_s = share_ttl_s
        self._clock = clock
        self._shares: dict[tuple[str, str], _Share] = {}
        self._refills: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def admit(
        self,
        tenant_id: str,
        user: str,
        *,
        tenant_rate: float | None = None,
        tenant_burst: int | None = None,
        cost: float = 1.0,
    ) -> int:
        shared = self.shared
        t_rate = shared.tenant_rate if tenant_rate is None else tenant_rate
        t_burst = shared.tenant_burst if tenant_burst is None else tenant_burst
        check_limits(t_rate, t_burst)
        check_cost(cost)
        if cost == 0:
            return 0
        key = (tenant_id, user)
        # A request that arrives while its share is being refilled waits for that one
        # refill rather than asking for a chunk of its own; after a few refills that
        # went to others, it asks for exactly its cost.
        waits = 0
        while not self._spend(key, cost):
            pending = self._refills.get(key)
            if pending is None:
                break
            if waits == MAX_WAITS:
                return await self.shared.admit(
                    tenant_id, user, tenant_rate=tenant_rate, tenant_burst=tenant_burst, cost=cost
                )
            waits += 1
            await asyncio.shield(pending)
        else:
            return 0
        chunk = min(
            max(cost, min(shared.user_rate, t_rate) * self._share_s),
            max(cost, min(shared.user_burst, t_burst) / 4),
        )
        chunk = max(cost, math.floor(chunk * 1000) / 1000)
        if chunk <= cost:
            return await shared.admit(
                tenant_id, user, tenant_rate=tenant_rate, tenant_burst=tenant_burst, cost=cost
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._refills[key] = done
        try:
            wait = await shared.admit(
                tenant_id, user, tenant_rate=tenant_rate, tenant_burst=tenant_burst, cost=chunk
            )
            if wait == 0:
                self._add(key, chunk - cost)
                return 0
        finally:
            del self._refills[key]
            done.set_result(None)
        # Less than a chunk left in the shared buckets: ask for exactly this request.
        return await shared.admit(
            tenant_id, user, tenant_rate=tenant_rate, tenant_burst=tenant_burst, cost=cost
        )

    def _spend(self, key: tuple[str, str], cost: float) -> bool:
        share = self._shares.get(key)
        if share is None:
            return False
        if share.expires <= self._clock():
            del self._shares[key]
            return False
        if share.tokens + 1e-9 < cost:
            return False
        share.tokens -= cost
        return True

    def _add(self, key: tuple[str, str], tokens: float) -> None:
        now = self._clock()
        share = self._shares.get(key)
        if share is None or share.expires <= now:
            self._shares[key] = _Share(tokens, now + self._ttl_s)
            if len(self._shares) > MAX_SHARES:
                self._shares = {k: s for k, s in self._shares.items() if s.expires > now}
        else:
            share.tokens += tokens
            share.expires = now + self._ttl_s

    async def aclose(self) -> None:
        await self.shared.aclose()


def _conforms(limiter: LocalShareRateLimiter) -> RateLimiter:
    return limiter  # mypy checks that the class meets the protocol
