"""Redis pools make a crowd wait for a connection instead of failing; an unreachable
Redis is named in one line."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from yamabiko.store.redis_clients import RedisUnreachable, check_reachable, pooled_client


@pytest.mark.redis
async def test_a_crowd_larger_than_the_pool_waits_for_connections(redis_url: str) -> None:
    client = pooled_client(redis_url, max_connections=2, pool_timeout_s=5.0)
    try:
        # Each call holds its connection 50 ms: 40 of them on 2 connections need ~1 s.
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *(client.blpop([f"test:nothing:{i}"], timeout=0.05) for i in range(40))
            )
        assert results == [None] * 40
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_py_s_default_pool_would_have_failed_that_crowd(redis_url: str) -> None:
    # The behaviour the blocking pool replaces: a full pool raises at once.
    client = Redis.from_url(redis_url, max_connections=2)
    try:
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *(client.blpop([f"test:nothing:{i}"], timeout=0.05) for i in range(40)),
                return_exceptions=True,
            )
        assert any(isinstance(r, RedisConnectionError) for r in results)
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_caller_gives_up_after_the_pool_timeout(redis_url: str) -> None:
    client = pooled_client(redis_url, max_connections=1, pool_timeout_s=0.2)
    try:
        holder = asyncio.create_task(client.blpop(["test:nothing"], timeout=2))
        await asyncio.sleep(0)  # let it take the only connection
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await client.ping()
        assert time.monotonic() - started < 1.5
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
    finally:
        await client.aclose()


async def test_an_unreachable_redis_is_named_by_its_setting_without_credentials() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(RedisUnreachable) as info:
        await check_reachable(f"redis://:hunter2@127.0.0.1:{port}/0", setting="YAMABIKO_REDIS_URL")
    message = str(info.value)
    assert message.startswith(f"YAMABIKO_REDIS_URL: no Redis answers at 127.0.0.1:{port}")
    assert "hunter2" not in message
    assert "\n" not in message
