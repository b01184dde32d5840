"""Rate limiter contract, in memory and on Redis (where nodes share the buckets)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from yamabiko.store.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

Make = Callable[..., RateLimiter]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    if request.param == "memory":
        yield lambda **rates: MemoryRateLimiter(**rates)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    clients: list[Redis] = []

    def build(**rates: float) -> RateLimiter:
        client = Redis.from_url(url)
        clients.append(client)
        return RedisRateLimiter(client, prefix=prefix, **rates)  # type: ignore[arg-type]

    yield build
    if clients:
        keys = [k async for k in clients[0].scan_iter(f"{prefix}*")]
        if keys:
            await clients[0].delete(*keys)
    for client in clients:
        await client.aclose()


RATES = {"user_rate": 5.0, "user_burst": 3, "tenant_rate": 1000.0, "tenant_burst": 1000}


async def test_burst_then_refusal_with_retry_after(make: Make) -> None:
    limiter = make(**RATES)
    assert [await limiter.admit("t", "u") for _ in range(3)] == [0, 0, 0]
    retry = await limiter.admit("t", "u")
    assert 1 <= retry <= 200  # one token at 5/s
    assert await limiter.admit("t", "other") == 0  # users have their own buckets


async def test_a_refused_request_takes_nothing_and_the_bucket_refills(make: Make) -> None:
    limiter = make(user_rate=50.0, user_burst=1, tenant_rate=1000.0, tenant_burst=1000)
    assert await limiter.admit("t", "u") == 0
    retry = await limiter.admit("t", "u")
    assert 0 < retry <= 20
    for _ in range(5):  # refusals do not dig the hole deeper
        assert await limiter.admit("t", "u") <= 20
    await asyncio.sleep(retry / 1000 + 0.01)
    assert await limiter.admit("t", "u") == 0


async def test_the_tenant_bucket_is_shared_by_its_users(make: Make) -> None:
    limiter = make(user_rate=1000.0, user_burst=1000, tenant_rate=1.0, tenant_burst=2)
    assert await limiter.admit("t", "a") == 0
    assert await limiter.admit("t", "b") == 0
    assert await limiter.admit("t", "c") > 0
    assert await limiter.admit("other", "a") == 0


@pytest.mark.redis
async def test_two_nodes_share_one_bucket_exactly(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    clients = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    try:
        nodes = [
            RedisRateLimiter(
                c,
                prefix=prefix,
                user_rate=0.001,
                user_burst=10,
                tenant_rate=1000.0,
                tenant_burst=1000,
            )
            for c in clients
        ]
        results = await asyncio.gather(*(nodes[i % 2].admit("t", "u") for i in range(30)))
        assert sum(1 for r in results if r == 0) == 10
        keys = [k async for k in clients[0].scan_iter(f"{prefix}*")]
        assert keys
        assert all([await clients[0].pttl(k) > 0 for k in keys])  # idle buckets expire
        await clients[0].delete(*keys)
    finally:
        for client in clients:
            await client.aclose()
