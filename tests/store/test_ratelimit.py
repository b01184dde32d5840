"""Rate limiter contract, in memory and on Redis (where nodes share the buckets).

The in-memory limiter runs on a controlled clock. The Redis one runs on the server's
clock, so its tests let real time pass: rates are set high enough that the waits are a
few milliseconds, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from tests.store.conftest import ACME, GLOBEX
from yamabiko.protocol.errors import INTERNAL_ERROR, InternalError
from yamabiko.schema.objects import RateLimits
from yamabiko.store import Store
from yamabiko.store.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
    TenantRateLimits,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Limiters:
    """Builds limiters of one kind; ``advance`` lets time pass for them."""

    kind: str
    make: Callable[..., RateLimiter]
    advance: Callable[[float], Awaitable[None]]
    clients: list[Redis] = field(default_factory=list)


def unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


async def delete_keys(client: Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiters(request: pytest.FixtureRequest) -> AsyncIterator[Limiters]:
    if request.param == "memory":
        clock = Clock()

        async def tick(seconds: float) -> None:
            clock.now += seconds

        yield Limiters("memory", lambda **rates: MemoryRateLimiter(clock=clock, **rates), tick)
        return
    url = request.getfixturevalue("redis_url")
    prefix = unique_prefix()
    clients: list[Redis] = []

    def build(**rates: float) -> RateLimiter:
        # A client of its own for each limiter: each one is a node.
        client = Redis.from_url(url)
        clients.append(client)
        return RedisRateLimiter(client, prefix=prefix, **rates)  # type: ignore[arg-type]

    async def wait(seconds: float) -> None:
        async with asyncio.timeout(seconds + 1.0):
            await asyncio.sleep(seconds)

    yield Limiters("redis", build, wait, clients)
    try:
        if clients:
            await delete_keys(clients[0], prefix)
    finally:
        for client in clients:
            await client.aclose()


FAST_TENANT = {"tenant_rate": 10_000.0, "tenant_burst": 10_000}
FAST_USER = {"user_rate": 10_000.0, "user_burst": 10_000}


async def test_a_burst_then_a_refusal_with_a_retry_after_from_the_rate(
    limiters: Limiters,
) -> None:
    limiter = limiters.make(user_rate=5.0, user_burst=3, **FAST_TENANT)
    assert [await limiter.admit(ACME, "u") for _ in range(3)] == [0, 0, 0]
    retry = await limiter.admit(ACME, "u")
    assert 150 < retry <= 200  # one token at 5/s: 200 ms, less what refilled meanwhile
    if limiters.kind == "memory":
        assert retry == 200
    assert await limiter.admit(ACME, "other") == 0  # users have buckets of their own


async def test_a_retry_after_retry_after_ms_is_admitted(limiters: Limiters) -> None:
    limiter = limiters.make(user_rate=50.0, user_burst=1, **FAST_TENANT)
    assert await limiter.admit(ACME, "u") == 0
    retry = await limiter.admit(ACME, "u")
    assert 0 < retry <= 20
    if limiters.kind == "memory":  # exactly then, not before
        await limiters.advance(retry / 1000 - 0.002)
        assert await limiter.admit(ACME, "u") > 0
        await limiters.advance(0.002)
    else:  # a sleep may wake up to a millisecond early
        await limiters.advance(retry / 1000 + 0.002)
    assert await limiter.admit(ACME, "u") == 0


async def test_the_bucket_refills_over_time_up_to_its_burst(limiters: Limiters) -> None:
    limiter = limiters.make(user_rate=50.0, user_burst=2, **FAST_TENANT)
    assert [await limiter.admit(ACME, "u") for _ in range(2)] == [0, 0]
    assert await limiter.admit(ACME, "u") > 0
    await limiters.advance(0.045)  # 2.25 tokens' worth, capped at 2
    assert [await limiter.admit(ACME, "u") for _ in range(2)] == [0, 0]
    assert await limiter.admit(ACME, "u") > 0
    if limiters.kind == "memory":
        await limiters.advance(3600.0)  # an hour idle still fills only the burst
        assert [await limiter.admit(ACME, "u") for _ in range(3)] == [0, 0, 20]


async def test_a_cheap_message_takes_a_fraction_of_a_token(limiters: Limiters) -> None:
    limiter = limiters.make(user_rate=0.001, user_burst=2, **FAST_TENANT)
    # Two tokens: forty messages at 0.05 each, then the bucket is empty.
    assert [await limiter.admit(ACME, "u", cost=0.05) for _ in range(40)] == [0] * 40
    assert await limiter.admit(ACME, "u", cost=0.05) > 0
    assert await limiter.admit(ACME, "other", cost=2.0) == 0  # a cost of the whole burst


async def test_a_costly_request_waits_for_its_whole_cost(limiters: Limiters) -> None:
    limiter = limiters.make(user_rate=10.0, user_burst=4, **FAST_TENANT)
    assert await limiter.admit(ACME, "u", cost=3.0) == 0
    retry = await limiter.admit(ACME, "u", cost=3.0)  # 1 left: 2 more at 10/s
    assert 150 < retry <= 200
    assert await limiter.admit(ACME, "u", cost=1.0) == 0  # refused took nothing
    # A cost above the burst is charged as the burst, so it can still be admitted.
    assert await limiter.admit(ACME, "big", cost=100.0) == 0
    assert await limiter.admit(ACME, "big", cost=0.5) > 0


async def test_a_cost_that_is_not_a_number_of_tokens_is_refused(limiters: Limiters) -> None:
    limiter = limiters.make(user_rate=1.0, user_burst=1, **FAST_TENANT)
    for cost in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            await limiter.admit(ACME, "u", cost=cost)


async def test_refusals_for_the_user_take_nothing(limiters: Limiters) -> None:
    limiter = limiters.make(user_rate=0.001, user_burst=1, tenant_rate=0.001, tenant_burst=2)
    assert await limiter.admit(ACME, "a") == 0
    retries = [await limiter.admit(ACME, "a") for _ in range(5)]
    assert all(r > 900_000 for r in retries)  # 1000 s for the user's next token
    assert retries == sorted(retries, reverse=True)  # no deeper hole: never longer
    assert await limiter.admit(ACME, "b") == 0  # a's refusals left the tenant's token
    assert await limiter.admit(ACME, "c") > 0


async def test_refusals_for_the_tenant_take_nothing_from_the_user(limiters: Limiters) -> None:
    # The tenant's bucket refills in 500 ms: long enough that the refusals below all
    # fall inside it even on a loaded machine.
    limiter = limiters.make(user_rate=0.001, user_burst=2, tenant_rate=2.0, tenant_burst=1)
    assert await limiter.admit(ACME, "a") == 0
    retry = await limiter.admit(ACME, "a")
    assert 0 < retry <= 500  # the tenant's bucket: 500 ms at 2/s
    for _ in range(3):
        assert await limiter.admit(ACME, "a") > 0
    await limiters.advance(retry / 1000 + 0.005)
    assert await limiter.admit(ACME, "a") == 0  # a's second token was never taken
    assert await limiter.admit(ACME, "a") > 900_000  # and now a is out


async def test_the_tenant_bucket_is_shared_by_its_users(limiters: Limiters) -> None:
    limiter = limiters.make(**FAST_USER, tenant_rate=1.0, tenant_burst=2)
    assert await limiter.admit(ACME, "a") == 0
    assert await limiter.admit(ACME, "b") == 0
    retry = await limiter.admit(ACME, "c")
    assert 900 < retry <= 1000
    assert await limiter.admit(GLOBEX, "a") == 0  # another tenant, another bucket


async def test_a_tenant_s_own_limits_replace_the_defaults(limiters: Limiters) -> None:
    limiter = limiters.make(**FAST_USER, tenant_rate=0.001, tenant_burst=3)
    own = {"tenant_rate": 2.0, "tenant_burst": 5}
    assert [await limiter.admit(ACME, f"u{i}", **own) for i in range(5)] == [0] * 5
    retry = await limiter.admit(ACME, "u", **own)
    assert 400 < retry <= 500  # at its own 2/s, not the default 0.001/s
    # Globex has no limits of its own: the defaults, through the two-argument call.
    assert [await limiter.admit(GLOBEX, f"u{i}") for i in range(3)] == [0, 0, 0]
    assert await limiter.admit(GLOBEX, "u") > 900_000


async def test_a_smaller_burst_cuts_a_fuller_bucket_down(limiters: Limiters) -> None:
    limiter = limiters.make(**FAST_USER, tenant_rate=0.001, tenant_burst=100)
    assert await limiter.admit(ACME, "u") == 0  # 99 left under the defaults
    own = {"tenant_rate": 0.001, "tenant_burst": 2}
    assert [await limiter.admit(ACME, "u", **own) for _ in range(3)][2] > 0


async def test_limits_that_cannot_admit_anything_are_refused(limiters: Limiters) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        limiters.make(user_rate=0.0, user_burst=1, **FAST_TENANT)
    with pytest.raises(ValueError, match="burst of at least 1"):
        limiters.make(**FAST_USER, tenant_rate=1.0, tenant_burst=0)
    limiter = limiters.make(**FAST_USER, **FAST_TENANT)
    with pytest.raises(ValueError, match="rate > 0"):
        await limiter.admit(ACME, "u", tenant_rate=-1.0)
    with pytest.raises(ValueError, match="burst of at least 1"):
        await limiter.admit(ACME, "u", tenant_burst=0)


def test_memory_pruning_judges_a_bucket_by_its_own_limits() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock, **FAST_USER, tenant_rate=0.001, tenant_burst=10)
    own = {"tenant_rate": 0.001, "tenant_burst": 20_000}
    # The 10,000th admission prunes: Acme's bucket (10,000 of its own 20,000 left) is
    # fuller than the default burst but not full, so it must be kept as it is.
    assert all(limiter.admit_now(ACME, str(i), **own) == 0 for i in range(10_000))
    assert all(limiter.admit_now(ACME, str(i), **own) == 0 for i in range(10_000))
    assert limiter.admit_now(ACME, "u", **own) > 0


# Redis only: several nodes, keys, failures.


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_two_nodes_share_one_bucket_exactly(redis_url: str, redis_client: Redis) -> None:
    prefix = unique_prefix()
    nodes = [
        RedisRateLimiter.from_url(
            redis_url,
            prefix=prefix,
            user_rate=0.001,
            user_burst=10,
            tenant_rate=0.001,
            tenant_burst=25,
        )
        for _ in range(2)
    ]
    try:
        async with asyncio.timeout(10):
            alice = await asyncio.gather(*(nodes[i % 2].admit(ACME, "alice") for i in range(40)))
            assert sum(1 for r in alice if r == 0) == 10  # alice's burst, across both
            assert all(r > 900_000 for r in alice if r)
            users = await asyncio.gather(
                *(nodes[i % 2].admit(ACME, f"u{i % 7}") for i in range(60))
            )
            assert sum(1 for r in users if r == 0) == 15  # what is left of Acme's 25
    finally:
        await delete_keys(redis_client, prefix)
        for node in nodes:
            await node.aclose()


@pytest.mark.redis
async def test_keys_are_named_tagged_and_expire_once_full(redis_client: Redis) -> None:
    prefix = unique_prefix()
    limiter = RedisRateLimiter(
        redis_client,
        prefix=prefix,
        user_rate=2.0,
        user_burst=4,
        tenant_rate=10.0,
        tenant_burst=10,
    )
    try:
        assert await limiter.admit(ACME, "alice") == 0
        user_key, tenant_key = limiter.keys(ACME, "alice")
        assert (user_key, tenant_key) == (f"{prefix}rl:u:{{acme}}:alice", f"{prefix}rl:t:{{acme}}")
        assert sorted([k async for k in redis_client.scan_iter(f"{prefix}*")]) == sorted(
            [tenant_key.encode(), user_key.encode()]
        )
        # PEXPIRE is the time to refill fully: one token at 2/s, one at 10/s.
        assert 400 < await redis_client.pttl(user_key) <= 500
        assert 50 < await redis_client.pttl(tenant_key) <= 100
        assert float(await redis_client.hget(user_key, "tokens")) == pytest.approx(3.0)  # type: ignore[misc, arg-type]
        async with asyncio.timeout(2):
            while await redis_client.exists(user_key, tenant_key):
                await asyncio.sleep(0.05)
        # Vanished means full: the whole burst is there again.
        results = [await limiter.admit(ACME, "alice") for _ in range(5)]
        assert results[:4] == [0, 0, 0, 0]
        assert 400 < results[4] <= 500
    finally:
        await delete_keys(redis_client, prefix)


@pytest.mark.redis
async def test_the_script_is_loaded_once_and_run_by_its_sha(redis_client: Redis) -> None:
    prefix = unique_prefix()
    limiter = RedisRateLimiter(redis_client, prefix=prefix, **FAST_USER, **FAST_TENANT)
    try:
        assert await limiter.admit(ACME, "u") == 0
        assert await redis_client.script_exists(limiter._script.sha) == [True]
    finally:
        await delete_keys(redis_client, prefix)


async def test_an_unreachable_redis_raises_rate_limiter_unavailable() -> None:
    # Nothing listens on a port we just closed.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    limiter = RedisRateLimiter.from_url(
        f"redis://:hunter2@127.0.0.1:{port}/0", **FAST_USER, **FAST_TENANT, timeout_s=0.5
    )
    try:
        with pytest.raises(RateLimiterUnavailable) as info:
            await limiter.admit(ACME, "u")
        assert isinstance(info.value, InternalError)
        assert info.value.code == INTERNAL_ERROR
        assert "hunter2" not in info.value.message
        assert info.value.__cause__ is not None
    finally:
        await limiter.aclose()


async def test_a_redis_that_does_not_answer_raises_within_the_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisRateLimiter.from_url(
        f"redis://127.0.0.1:{port}", **FAST_USER, **FAST_TENANT, timeout_s=0.2
    )
    try:
        async with asyncio.timeout(2):
            with pytest.raises(RateLimiterUnavailable):
                await limiter.admit(ACME, "u")
    finally:
        await limiter.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_client_passed_in_stays_the_caller_s_to_close() -> None:
    client = Redis.from_url("redis://127.0.0.1:6379")
    limiter = RedisRateLimiter(client, **FAST_USER, **FAST_TENANT)
    await limiter.aclose()  # not ours: nothing happens
    assert limiter._client is client
    await client.aclose()


def test_a_prefix_with_braces_would_break_the_hash_tag() -> None:
    client = Redis.from_url("redis://127.0.0.1:6379")
    with pytest.raises(ValueError, match="braces"):
        RedisRateLimiter(client, prefix="{app}:", **FAST_USER, **FAST_TENANT)


# A tenant's own limits, from the store.


async def test_tenant_rate_limits_come_from_the_store_cached(store: Store) -> None:
    clock = Clock()
    limits = TenantRateLimits(store, ttl_s=5.0, clock=clock)
    await store.tenants.create(
        tenant_id=ACME, name="Acme", rate_limits=RateLimits(requests_per_second=2.0, burst=3)
    )
    await store.tenants.create(tenant_id=GLOBEX, name="Globex")
    assert await limits.get(ACME) == RateLimits(requests_per_second=2.0, burst=3)
    assert await limits.get(GLOBEX) is None  # a row without limits: the defaults
    assert await limits.get("initech") is None  # no row: the defaults
    await store.tenants.update(ACME, rate_limits=RateLimits(requests_per_second=9.0, burst=9))
    clock.now += 4.9
    assert (await limits.get(ACME)).burst == 3  # type: ignore[union-attr]
    clock.now += 0.2
    assert (await limits.get(ACME)).burst == 9  # type: ignore[union-attr]
    await store.tenants.update(ACME, rate_limits=None)
    limits.forget(ACME)
    assert await limits.get(ACME) is None

    limiter = MemoryRateLimiter(clock=clock, **FAST_USER, tenant_rate=0.001, tenant_burst=1)
    own = TenantRateLimits.overrides(RateLimits(requests_per_second=4.0, burst=2))
    assert own == {"tenant_rate": 4.0, "tenant_burst": 2}
    assert TenantRateLimits.overrides(None) == {}
    assert [await limiter.admit(ACME, "u", **own) for _ in range(3)] == [0, 0, 250]


# Redis only: a crowd of requests is decided in batches, exactly.


@pytest.mark.redis
async def test_a_burst_of_2000_requests_takes_a_few_round_trips_and_stays_exact(
    redis_url: str, redis_client: Redis
) -> None:
    prefix = unique_prefix()
    limiter = RedisRateLimiter.from_url(
        redis_url,
        prefix=prefix,
        user_rate=0.001,
        user_burst=1500,
        tenant_rate=0.001,
        tenant_burst=100_000,
        max_connections=1,
    )
    try:
        async with asyncio.timeout(10):
            results = await asyncio.gather(*(limiter.admit(ACME, "fleet") for _ in range(2000)))
        assert sum(1 for r in results if r == 0) == 1500  # the burst, not one more
        assert results[:1500] == [0] * 1500  # in the order they asked
        assert all(r > 0 for r in results[1500:])
        assert limiter.round_trips <= 20
    finally:
        await delete_keys(redis_client, prefix)
        await limiter.aclose()


@pytest.mark.redis
async def test_a_request_s_cost_is_taken_from_both_buckets(
    redis_url: str, redis_client: Redis
) -> None:
    prefix = unique_prefix()
    limiter = RedisRateLimiter(
        redis_client, prefix=prefix, user_rate=0.001, user_burst=10, **FAST_TENANT
    )
    try:
        assert await limiter.admit(ACME, "u", cost=4) == 0
        assert await limiter.admit(ACME, "u", cost=4) == 0
        assert await limiter.admit(ACME, "u", cost=4) > 0  # 2 left: refused, nothing taken
        assert await limiter.admit(ACME, "u", cost=0.5) == 0  # a cheap one still fits
        assert await limiter.admit(ACME, "u", cost=0) == 0  # free, not even a round trip
        user_key, _ = limiter.keys(ACME, "u")
        tokens = await redis_client.hget(user_key, "tokens")  # type: ignore[misc]
        assert float(tokens) == pytest.approx(1.5, abs=0.01)
        with pytest.raises(ValueError, match="cost"):
            await limiter.admit(ACME, "u", cost=-1)
    finally:
        await delete_keys(redis_client, prefix)


async def test_a_failing_redis_is_logged_at_warning_once_not_per_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    limiter = RedisRateLimiter.from_url(
        f"redis://:hunter2@127.0.0.1:{port}/0", **FAST_USER, **FAST_TENANT, timeout_s=0.5
    )
    try:
        with caplog.at_level("WARNING", logger="yamabiko.store.ratelimit"):
            for _ in range(5):
                with pytest.raises(RateLimiterUnavailable):
                    await limiter.admit(ACME, "u")
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1
        assert "rate limiter" in warnings[0].getMessage()
        assert "hunter2" not in caplog.text
    finally:
        await limiter.aclose()
