"""Local shares of the Redis buckets: few round trips, and never more admitted than the
shared buckets allow, with several workers (limiters) on one Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.store.test_ratelimit import delete_keys, unique_prefix
from yamabiko.store.rate_shares import LocalShareRateLimiter
from yamabiko.store.ratelimit import RedisRateLimiter

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(redis_url)
    prefix = unique_prefix()
    try:
        yield client, prefix
    finally:
        await delete_keys(client, prefix)
        await client.aclose()


def worker(
    client: Redis, prefix: str, *, rate: float, burst: int
) -> tuple[LocalShareRateLimiter, RedisRateLimiter]:
    shared = RedisRateLimiter(
        client, prefix=prefix, user_rate=rate, user_burst=burst,
        tenant_rate=1e6, tenant_burst=1_000_000,
    )  # fmt: skip
    return LocalShareRateLimiter(shared), shared


async def test_a_run_of_requests_costs_one_round_trip_per_chunk(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    # 1,000/s: a chunk is 50 ms of it, 50 tokens.
    limiter, shared = worker(client, prefix, rate=1000.0, burst=2000)
    admitted = [await limiter.admit("acme", "alice") for _ in range(500)]
    assert admitted == [0] * 500
    assert shared.round_trips <= 11  # 500 / 50, and the first


async def test_workers_sharing_a_bucket_never_admit_more_than_it_holds(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    rate, burst = 100.0, 40  # chunks of 5 tokens
    workers = [worker(client, prefix, rate=rate, burst=burst)[0] for _ in range(3)]
    started = time.monotonic()
    admitted = 0
    refused = []
    for i in range(120):
        wait = await workers[i % 3].admit("acme", "bob")
        if wait == 0:
            admitted += 1
        else:
            refused.append(wait)
    elapsed = time.monotonic() - started
    # Never more than the burst plus what refilled meanwhile...
    assert admitted <= burst + rate * elapsed + 1
    # ...and at most a chunk per worker held back, unspent.
    assert admitted >= burst - 3 * 5
    assert refused
    assert all(wait >= 1 for wait in refused)


async def test_near_the_limit_a_refusal_says_when_to_retry(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    # 50 ms of 10/s is under a token: every request asks Redis for exactly its cost.
    limiter, _ = worker(client, prefix, rate=10.0, burst=8)
    results = [await limiter.admit("acme", "carol") for _ in range(9)]
    assert results[:8] == [0] * 8
    assert 1 <= results[8] <= 100 + 50  # one token at 10/s, give or take the clock


async def test_requests_arriving_together_share_one_refill(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    limiter, shared = worker(client, prefix, rate=1000.0, burst=2000)  # chunks of 50
    results = await asyncio.gather(*(limiter.admit("acme", "dave") for _ in range(200)))
    assert results == [0] * 200
    assert shared.round_trips <= 8  # 200 / 50 chunks, plus exact asks while one refills
