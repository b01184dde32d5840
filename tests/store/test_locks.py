"""Lock contract, in process and on Redis (where each RedisLocks built is a node with its
own client, all under a key prefix unique to the test). Expiry is checked on a controlled
clock in process; on Redis by polling, since key expiry has no event to wait on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from yamabiko.store.locks import Locks, LockToken, MemoryLocks, RedisLocks, keep_alive

Make = Callable[[], Locks]
WAIT_S = 5.0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    if request.param == "memory":
        shared = MemoryLocks()  # one node: every "instance" is the same process
        yield lambda: shared
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    clients: list[Redis] = []

    def build() -> Locks:
        client = Redis.from_url(url)
        clients.append(client)
        return RedisLocks(client, prefix=prefix)

    yield build
    if clients:
        keys = [k async for k in clients[0].scan_iter(f"{prefix}*")]
        if keys:
            await clients[0].delete(*keys)
    for client in clients:
        await client.aclose()


async def test_one_holder_at_a_time(make: Make) -> None:
    locks = make()
    token = await locks.acquire("conversation:1", ttl_s=30)
    assert token is not None
    assert await locks.acquire("conversation:1", ttl_s=30) is None
    other = await locks.acquire("conversation:2", ttl_s=30)  # keys are independent
    assert other is not None
    assert await locks.release(token)
    again = await locks.acquire("conversation:1", ttl_s=30)
    assert again is not None
    assert again.token != token.token
    assert not await locks.release(token)  # the old token holds nothing any more
    assert await locks.acquire("conversation:1", ttl_s=30) is None
    assert await locks.release(again)
    assert await locks.release(other)


async def test_only_the_owner_releases_or_refreshes(make: Make) -> None:
    locks = make()
    token = await locks.acquire("k", ttl_s=30)
    assert token is not None
    forged = LockToken("k", "not-the-token")
    assert not await locks.release(forged)
    assert not await locks.refresh(forged, 30)
    assert await locks.acquire("k", ttl_s=30) is None  # still held
    assert await locks.refresh(token, 30)
    assert await locks.release(token)
    assert not await locks.release(token)  # idempotent: nothing left to release


async def test_an_expired_lease_frees_the_key(make: Make) -> None:
    locks = make()
    token = await locks.acquire("k", ttl_s=0.05)
    assert token is not None
    async with asyncio.timeout(WAIT_S):
        while (successor := await locks.acquire("k", ttl_s=30)) is None:
            await asyncio.sleep(0.01)  # expiry has no event to wait on
    assert not await locks.refresh(token, 30)  # the first holder learns it lost the lease
    assert not await locks.release(token)
    assert await locks.acquire("k", ttl_s=30) is None  # and cannot free the successor's
    assert await locks.release(successor)


async def test_concurrent_acquires_across_instances_admit_exactly_one(make: Make) -> None:
    instances = [make(), make()]
    tokens = await asyncio.gather(*(instances[i % 2].acquire("busy", ttl_s=30) for i in range(40)))
    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1
    loser = instances[1]
    assert await loser.acquire("busy", ttl_s=30) is None
    assert await instances[0].release(winners[0]) or await loser.release(winners[0])
    assert await loser.acquire("busy", ttl_s=30) is not None


async def test_keep_alive_holds_the_lease_until_cancelled_and_returns_when_lost(
    make: Make,
) -> None:
    locks = make()
    token = await locks.acquire("k", ttl_s=0.2)
    assert token is not None
    keeper = asyncio.create_task(keep_alive(locks, token, ttl_s=0.2))
    # Over a few ttls, the lease is never free.
    loop = asyncio.get_running_loop()
    until = loop.time() + 0.5
    while loop.time() < until:
        assert await locks.acquire("k", ttl_s=30) is None
        await asyncio.sleep(0.02)
    assert not keeper.done()
    keeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await keeper
    # A keeper whose lease is taken from it returns.
    assert await locks.release(token)
    keeper = asyncio.create_task(keep_alive(locks, token, ttl_s=0.1))
    async with asyncio.timeout(WAIT_S):
        await keeper


async def test_memory_lease_lasts_exactly_its_ttl() -> None:
    now = [100.0]
    locks = MemoryLocks(clock=lambda: now[0])
    token = await locks.acquire("k", ttl_s=10)
    assert token is not None
    now[0] += 9.99
    assert await locks.acquire("k", ttl_s=10) is None
    assert await locks.refresh(token, 10)  # now held until 119.99
    now[0] += 9.99
    assert await locks.acquire("k", ttl_s=10) is None
    now[0] += 0.01
    assert not await locks.refresh(token, 10)
    assert await locks.acquire("k", ttl_s=10) is not None


@pytest.mark.redis
async def test_redis_lease_ttl_is_set_and_refreshed(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    client = Redis.from_url(redis_url)
    try:
        locks = RedisLocks(client, prefix=prefix)
        token = await locks.acquire("k", ttl_s=2)
        assert token is not None
        assert 0 < await client.pttl(f"{prefix}lock:k") <= 2000
        assert await locks.refresh(token, 60)
        assert 2000 < await client.pttl(f"{prefix}lock:k") <= 60_000
        assert await locks.release(token)
        assert await client.exists(f"{prefix}lock:k") == 0
    finally:
        await client.delete(f"{prefix}lock:k")
        await client.aclose()
