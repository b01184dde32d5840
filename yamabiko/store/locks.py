"""Leased locks: one generation per conversation at a time (docs/streams.md).

A lock is a lease: ``acquire`` returns a :class:`LockToken` good for ``ttl_s`` seconds,
which its holder extends with ``refresh`` (see :func:`keep_alive`) and gives back with
``release``. If the holder dies, the lease runs out and the key is free again, so a
crashed node cannot keep a conversation busy for ever. The in-process locks serve one
node; the Redis ones (``SET key token NX PX ttl``, and compare-then-act scripts for
release and refresh) are shared by every node.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
from redis.asyncio import Redis


class LockToken(msgspec.Struct, frozen=True):
    """Proof of holding ``key``: only this token releases or refreshes it."""

    key: str
    token: str


class Locks(Protocol):
    """Guarantees: at most one token holds a key at a time (across nodes, for
    :class:`RedisLocks`), provided its holder refreshes it before its ttl runs out; a
    lease that runs out is lost, and ``refresh`` then says so (False) so the holder can
    stop. ``release`` and ``refresh`` with a token that no longer holds its key change
    nothing and return False. Not reentrant: a second ``acquire`` of a held key returns
    None, whoever asks."""

    async def acquire(self, key: str, *, ttl_s: float) -> LockToken | None:
        """A token holding ``key`` for ``ttl_s``, or None if someone holds it (the
        handler answers -32009)."""
        ...

    async def release(self, token: LockToken) -> bool:
        """Free the key if ``token`` still holds it; returns whether it did."""
        ...

    async def refresh(self, token: LockToken, ttl_s: float) -> bool:
        """Hold the key for ``ttl_s`` more from now; False if the lease was lost."""
        ...


async def keep_alive(
    locks: Locks, token: LockToken, *, ttl_s: float, every_s: float | None = None
) -> None:
    """Refresh ``token`` every ``every_s`` (a third of ``ttl_s`` by default) for as long
    as it runs; returns if the lease is lost. Run it beside the work the lock guards and
    cancel it when the work is done."""
    interval = ttl_s / 3 if every_s is None else every_s
    while True:
        await asyncio.sleep(interval)
        if not await locks.refresh(token, ttl_s):
            return


def _new_token() -> str:
    return secrets.token_hex(16)


class MemoryLocks:
    """In-process leases: the default for one node."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}
        self._acquired = 0

    async def acquire(self, key: str, *, ttl_s: float) -> LockToken | None:
        now = self._clock()
        held = self._held.get(key)
        if held is not None and held[1] > now:
            return None
        token = LockToken(key, _new_token())
        self._held[key] = (token.token, now + ttl_s)
        self._acquired += 1
        if self._acquired % 1024 == 0:
            for stale in [k for k, (_, until) in self._held.items() if until <= now]:
                del self._held[stale]
        return token

    async def release(self, token: LockToken) -> bool:
        if not self._holds(token):
            return False
        del self._held[token.key]
        return True

    async def refresh(self, token: LockToken, ttl_s: float) -> bool:
        if not self._holds(token):
            return False
        self._held[token.key] = (token.token, self._clock() + ttl_s)
        return True

    def _holds(self, token: LockToken) -> bool:
        held = self._held.get(token.key)
        return held is not None and held[0] == token.token and held[1] > self._clock()


_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_REFRESH_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisLocks:
    """Leases in Redis, shared by every node; expiry is Redis's own clock, so nodes whose
    clocks disagree still agree on who holds what. If Redis cannot be reached, the
    methods raise (a busy conversation is never assumed free)."""

    def __init__(self, client: Redis, *, prefix: str = "yamabiko:") -> None:
        self._client = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE_LUA)
        self._refresh = client.register_script(_REFRESH_LUA)

    def _key(self, key: str) -> str:
        return f"{self._prefix}lock:{key}"

    async def acquire(self, key: str, *, ttl_s: float) -> LockToken | None:
        token = LockToken(key, _new_token())
        taken = await self._client.set(self._key(key), token.token, nx=True, px=_ms(ttl_s))
        return token if taken else None

    async def release(self, token: LockToken) -> bool:
        return bool(await self._release(keys=[self._key(token.key)], args=[token.token]))

    async def refresh(self, token: LockToken, ttl_s: float) -> bool:
        return bool(
            await self._refresh(keys=[self._key(token.key)], args=[token.token, _ms(ttl_s)])
        )
