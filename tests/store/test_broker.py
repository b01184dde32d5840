"""Broker contract: every test runs on the in-process broker and on Redis (where each
broker built is a node with its own client, all under a key prefix unique to the test).
Waits are bounded; the few that poll do so because Redis expiry has no event to await."""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from yamabiko.store.broker import (
    Broker,
    BrokerUnavailable,
    Lagged,
    MemoryBroker,
    SeqOutOfRange,
    StreamEnded,
    StreamExists,
    StreamExpired,
    StreamGap,
    StreamItem,
    StreamNotFound,
    Subscription,
)
from yamabiko.store.redis_broker import RedisBroker

Make = Callable[..., Broker]
WAIT_S = 5.0

# Options only the Redis broker has; the memory broker ignores them here.
REDIS_ONLY = ("window", "page_size", "block_s")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def brokers(kind: str, url: str) -> AsyncIterator[Make]:
    """Builds brokers of one kind, closing them (and, on Redis, deleting the keys under
    this run's prefix) afterwards."""
    built: list[Broker] = []
    prefix = f"test:{uuid.uuid4().hex}:"

    def build(**options: Any) -> Broker:
        broker: Broker
        if kind == "memory":
            common = {k: v for k, v in options.items() if k not in REDIS_ONLY}
            broker = MemoryBroker(**common)
        else:
            broker = RedisBroker.from_url(url, prefix=prefix, **options)
        built.append(broker)
        return broker

    try:
        yield build
    finally:
        for broker in built:
            await broker.close()
        if kind == "redis":
            client = Redis.from_url(url)
            keys = [k async for k in client.scan_iter(f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


@pytest.fixture
async def make(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    async with brokers(kind, url) as build:
        yield build


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[Make]:
    """Redis brokers: each one a node with clients of its own."""
    async with brokers("redis", redis_url) as build:
        yield build


async def collect(subscription: Subscription) -> list[StreamItem]:
    async with asyncio.timeout(WAIT_S):
        return [item async for item in subscription]


async def new_stream(broker: Broker, items: int = 0) -> str:
    stream_id = str(uuid.uuid4())
    await broker.create(stream_id, owner_tenant="acme", owner_user="alice")
    for i in range(1, items + 1):
        assert await broker.publish(stream_id, "delta", f"d{i}".encode()) == i
    return stream_id


def seqs(items: list[StreamItem]) -> list[int]:
    return [item.seq for item in items]


async def test_items_arrive_in_order_then_the_subscription_ends(make: Make) -> None:
    broker = make()
    stream_id = await new_stream(broker)
    subscription = await broker.subscribe(stream_id)
    assert subscription.info.status == "live"
    assert subscription.info.last_seq == 0
    reader = asyncio.create_task(collect(subscription))
    for i in range(1, 6):
        assert await broker.publish(stream_id, "delta", b"\x00\xff" + bytes([i])) == i
    assert await broker.end(stream_id, "end", b'{"finishReason":"stop"}') == 6
    items = await reader
    assert seqs(items) == [1, 2, 3, 4, 5, 6]
    assert items[0] == StreamItem(1, "delta", b"\x00\xff\x01")
    assert items[-1] == StreamItem(6, "end", b'{"finishReason":"stop"}')
    assert subscription.last_seq == 6
    info = await broker.info(stream_id)
    assert info is not None
    assert (info.status, info.first_seq, info.last_seq) == ("ended", 1, 6)
    assert (info.owner_tenant, info.owner_user) == ("acme", "alice")


async def test_subscribers_joining_at_random_points_each_get_every_later_item_once(
    make: Make, kind: str
) -> None:
    # On Redis, half the subscribers are on another node, and the tail window is small
    # so that joiners replay from Redis history as well as from the local tail.
    nodes = [make(window=8, page_size=16), make(window=8, page_size=16)]
    if kind == "memory":
        nodes = nodes[:1]
    producer = nodes[0]
    stream_id = await new_stream(producer)
    rng = random.Random(4)
    total = 200
    readers: list[tuple[int, asyncio.Task[list[StreamItem]]]] = []

    async def join(node: Broker, after_seq: int) -> list[StreamItem]:
        subscription = await node.subscribe(stream_id, after_seq)
        return await collect(subscription)

    for i in range(1, total + 1):
        await producer.publish(stream_id, "delta", str(i).encode())
        if rng.random() < 0.2:
            after = rng.randint(0, i)
            readers.append((after, asyncio.create_task(join(rng.choice(nodes), after))))
        if rng.random() < 0.5:
            await asyncio.sleep(0)  # let readers interleave with the producer
    await producer.end(stream_id)
    assert len(readers) > 20
    for after, task in readers:
        items = await task
        assert seqs(items) == list(range(after + 1, total + 2))
        assert [item.payload for item in items[:-1]] == [
            str(s).encode() for s in range(after + 1, total + 1)
        ]


async def test_subscribing_after_the_end_replays_everything(make: Make) -> None:
    broker = make(window=4, page_size=3)
    stream_id = await new_stream(broker, items=10)
    await broker.end(stream_id)
    subscription = await broker.subscribe(stream_id, 0)
    assert (subscription.info.status, subscription.info.last_seq) == ("ended", 11)
    assert seqs(await collect(subscription)) == list(range(1, 12))
    resumed = await broker.subscribe(stream_id, 7)
    assert seqs(await collect(resumed)) == [8, 9, 10, 11]
    caught_up = await broker.subscribe(stream_id, 11)
    assert await collect(caught_up) == []


async def test_after_seq_out_of_range(make: Make) -> None:
    broker = make()
    stream_id = await new_stream(broker, items=3)
    with pytest.raises(SeqOutOfRange) as beyond:
        await broker.subscribe(stream_id, 4)
    assert beyond.value.data == {"afterSeq": 4, "lastSeq": 3}
    with pytest.raises(SeqOutOfRange):
        await broker.subscribe(stream_id, -1)
    # At last_seq exactly: nothing yet, then the new items.
    subscription = await broker.subscribe(stream_id, 3)
    reader = asyncio.create_task(collect(subscription))
    await broker.publish(stream_id, "delta", b"x")
    await broker.end(stream_id)
    assert seqs(await reader) == [4, 5]


async def test_unknown_duplicate_and_ended_streams(make: Make) -> None:
    broker = make()
    assert await broker.info("nope") is None
    with pytest.raises(StreamNotFound):
        await broker.subscribe("nope")
    with pytest.raises(StreamNotFound):
        await broker.publish("nope", "delta", b"")
    with pytest.raises(StreamNotFound):
        await broker.end("nope")
    stream_id = await new_stream(broker, items=1)
    with pytest.raises(StreamExists):
        await broker.create(stream_id, owner_tenant="acme", owner_user="bob")
    await broker.end(stream_id)
    with pytest.raises(StreamEnded):
        await broker.publish(stream_id, "delta", b"")
    with pytest.raises(StreamEnded):
        await broker.end(stream_id)
    await broker.ping()


async def test_trimmed_history_is_an_explicit_gap(make: Make) -> None:
    broker = make(max_items=50)
    stream_id = await new_stream(broker, items=500)
    info = await broker.info(stream_id)
    assert info is not None
    # Memory trims exactly; Redis (MAXLEN ~) in whole nodes, keeping at least 50.
    assert 1 < info.first_seq <= 451
    with pytest.raises(StreamGap) as gap:
        await broker.subscribe(stream_id, 0)
    assert (gap.value.after_seq, gap.value.first_seq) == (0, info.first_seq)
    assert gap.value.data == {"afterSeq": 0, "firstSeq": info.first_seq}
    oldest = await broker.subscribe(stream_id, info.first_seq - 1)
    async with asyncio.timeout(WAIT_S):
        assert (await anext(oldest)).seq == info.first_seq
    await broker.end(stream_id)
    assert seqs(await collect(oldest)) == list(range(info.first_seq + 1, 502))


async def test_a_slow_subscriber_blocks_nobody_and_then_catches_up(make: Make) -> None:
    broker = make(window=16, page_size=64)
    stream_id = await new_stream(broker)
    slow = await broker.subscribe(stream_id)
    fast = await broker.subscribe(stream_id)
    fast_reader = asyncio.create_task(collect(fast))
    for i in range(300):
        await broker.publish(stream_id, "delta", str(i).encode())
    await broker.end(stream_id)
    assert seqs(await fast_reader) == list(range(1, 302))
    assert slow.last_seq == 0  # it has read nothing, and the producer did not wait for it
    assert seqs(await collect(slow)) == list(range(1, 302))


async def test_a_subscriber_that_falls_behind_the_history_is_told_it_lagged(make: Make) -> None:
    broker = make(max_items=50, window=16)
    stream_id = await new_stream(broker)
    subscription = await broker.subscribe(stream_id)
    await broker.publish(stream_id, "delta", b"first")
    async with asyncio.timeout(WAIT_S):
        assert (await anext(subscription)).seq == 1
    for _ in range(500):
        await broker.publish(stream_id, "delta", b"more")
    with pytest.raises(Lagged) as lagged:
        await collect(subscription)
    assert lagged.value.after_seq == 1
    assert lagged.value.first_seq > 2
    assert subscription.last_seq == 1
    # Resuming where it stopped is a gap too: nothing is skipped silently.
    with pytest.raises(StreamGap):
        await broker.subscribe(stream_id, subscription.last_seq)


async def test_close_stops_a_waiting_reader(make: Make) -> None:
    broker = make()
    stream_id = await new_stream(broker, items=2)
    subscription = await broker.subscribe(stream_id)
    reader = asyncio.create_task(collect(subscription))
    await broker.publish(stream_id, "delta", b"3")
    await asyncio.sleep(0)
    await subscription.close()
    items = await reader
    assert seqs(items) == list(range(1, len(items) + 1))
    await subscription.close()  # idempotent
    async with await broker.subscribe(stream_id) as again:
        assert again.info.last_seq == 3


async def test_closing_the_broker_ends_its_subscriptions(make: Make) -> None:
    broker = make()
    stream_id = await new_stream(broker, items=1)
    subscription = await broker.subscribe(stream_id)
    async with asyncio.timeout(WAIT_S):
        assert (await anext(subscription)).seq == 1
    waiting = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0)
    await broker.close()
    with pytest.raises(BrokerUnavailable):
        async with asyncio.timeout(WAIT_S):
            await waiting
    with pytest.raises(BrokerUnavailable):
        await broker.publish(stream_id, "delta", b"")
    with pytest.raises(BrokerUnavailable):
        await broker.ping()
    await broker.close()  # idempotent


# -- in process: retention on a controlled clock --------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_retention_after_the_end() -> None:
    clock = Clock()
    broker = MemoryBroker(retention_s=600, idle_timeout_s=60, clock=clock)
    stream_id = await new_stream(broker, items=3)
    clock.now += 59  # live and active: kept
    await broker.publish(stream_id, "delta", b"4")
    clock.now += 59
    await broker.end(stream_id)
    reader = await broker.subscribe(stream_id, 2)
    clock.now += 599.9
    assert await broker.info(stream_id) is not None
    clock.now += 0.2
    assert await broker.info(stream_id) is None
    with pytest.raises(StreamNotFound):
        await broker.subscribe(stream_id)
    # A subscription made in time still reads what it was promised.
    assert seqs(await collect(reader)) == [3, 4, 5]
    await broker.create(stream_id, owner_tenant="acme", owner_user="alice")  # id free again


async def test_memory_abandoned_live_stream_is_dropped_and_its_readers_told() -> None:
    clock = Clock()
    broker = MemoryBroker(idle_timeout_s=60, clock=clock)
    stream_id = await new_stream(broker, items=1)
    subscription = await broker.subscribe(stream_id)
    reader = asyncio.create_task(collect(subscription))
    await asyncio.sleep(0)
    clock.now += 61
    assert await broker.info("another") is None  # any call sweeps expired streams
    with pytest.raises(StreamNotFound, match="abandoned"):
        await reader
    assert subscription.last_seq == 1
    assert await broker.info(stream_id) is None


async def test_memory_history_is_trimmed_exactly() -> None:
    broker = MemoryBroker(max_items=10)
    stream_id = await new_stream(broker, items=25)
    info = await broker.info(stream_id)
    assert info is not None
    assert (info.first_seq, info.last_seq) == (16, 25)


# -- Redis: many nodes ----------------------------------------------------------------


@pytest.mark.redis
async def test_produced_on_one_node_read_and_resumed_on_another(nodes: Make) -> None:
    node_a, node_b, node_c = nodes(), nodes(), nodes()
    stream_id = await new_stream(node_a, items=5)
    first = await node_b.subscribe(stream_id, 2)
    received: list[StreamItem] = []
    async with asyncio.timeout(WAIT_S):
        async for item in first:
            received.append(item)
            if item.seq == 5:
                break
    await first.close()  # the client disconnects after item 5
    await node_a.publish(stream_id, "delta", b"d6")
    resumed = await node_c.subscribe(stream_id, received[-1].seq)
    reader = asyncio.create_task(collect(resumed))
    await node_a.publish(stream_id, "delta", b"d7")
    await node_a.end(stream_id)
    received += await reader
    assert seqs(received) == [3, 4, 5, 6, 7, 8]
    assert [i.payload for i in received[:-1]] == [b"d3", b"d4", b"d5", b"d6", b"d7"]


@pytest.mark.redis
async def test_one_reader_per_node_per_stream_whatever_the_subscribers(nodes: Make) -> None:
    producer, node = nodes(), nodes()
    assert isinstance(node, RedisBroker)
    stream_id = await new_stream(producer)
    subscriptions = [await node.subscribe(stream_id) for _ in range(100)]
    assert node.feeds == 1
    readers = [asyncio.create_task(collect(s)) for s in subscriptions]
    for i in range(50):
        await producer.publish(stream_id, "delta", str(i).encode())
    await producer.end(stream_id)
    for reader in readers:
        assert seqs(await reader) == list(range(1, 52))
    assert node.feeds == 0  # the reader stops once the stream has ended


@pytest.mark.redis
async def test_closing_the_last_subscription_frees_the_blocked_connection(nodes: Make) -> None:
    broker = nodes()
    assert isinstance(broker, RedisBroker)
    name = f"{broker.prefix}broker-reader"
    stream_id = await new_stream(broker, items=1)
    subscriptions = [await broker.subscribe(stream_id) for _ in range(3)]
    async with asyncio.timeout(WAIT_S):
        assert (await anext(subscriptions[0])).seq == 1  # the feed is reading
        while not [c for c in await broker.client.client_list() if c["name"] == name]:
            await asyncio.sleep(0.01)  # no event tells when Redis sees the connection
    for subscription in subscriptions:
        await subscription.close()
    assert broker.feeds == 0
    async with asyncio.timeout(WAIT_S):
        while [c for c in await broker.client.client_list() if c["name"] == name]:
            await asyncio.sleep(0.01)


@pytest.mark.redis
async def test_redis_retention_after_the_end(nodes: Make) -> None:
    broker = nodes(retention_s=0.3, idle_timeout_s=30)
    assert isinstance(broker, RedisBroker)
    stream_id = await new_stream(broker, items=2)
    meta_key, items_key = broker.keys(stream_id)
    assert 10_000 < await broker.client.pttl(meta_key) <= 30_000
    await broker.end(stream_id)
    for key in (meta_key, items_key):
        assert 0 < await broker.client.pttl(key) <= 300
    async with asyncio.timeout(WAIT_S):
        while await broker.info(stream_id) is not None:
            await asyncio.sleep(0.02)  # key expiry has no event to wait on
    with pytest.raises(StreamNotFound):
        await broker.subscribe(stream_id)


@pytest.mark.redis
async def test_redis_abandoned_live_stream_ends_its_readers(nodes: Make) -> None:
    broker = nodes(idle_timeout_s=0.2, block_s=0.05)
    stream_id = await new_stream(broker, items=1)
    subscription = await broker.subscribe(stream_id)
    with pytest.raises(StreamNotFound, match="abandoned"):
        await collect(subscription)
    assert subscription.last_seq == 1


@pytest.mark.redis
async def test_redis_broker_needs_bytes_replies(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisBroker(client, client)
    finally:
        await client.aclose()


# Producer leases (Redis): a node that stops renewing is found out, and one node ends
# the stream for everyone.


async def lose_producer(producer: RedisBroker) -> None:
    """What a node's death looks like from Redis: its renewals stop (closing the broker
    stops them without ending the stream)."""
    await producer.close()


@pytest.mark.redis
async def test_a_live_stream_keeps_its_lease_while_its_producer_renews_it(nodes: Make) -> None:
    producer = nodes(lease_s=0.5)
    assert isinstance(producer, RedisBroker)
    stream_id = await new_stream(producer, items=1)
    lease = producer.lease_key(stream_id)
    assert await producer.client.get(lease) == producer.node_id.encode()
    # Four leases' worth of time later it is still held: renewed, not merely long.
    async with asyncio.timeout(WAIT_S):
        await asyncio.sleep(2.0)
    info = await producer.info(stream_id)
    assert info is not None
    assert not info.producer_lost
    assert 0 < await producer.client.pttl(lease) <= 500
    await producer.end(stream_id)
    assert not await producer.client.exists(lease)  # ended: nothing left to renew
    assert producer.produced == 0


@pytest.mark.redis
async def test_a_lost_producer_is_reported_and_exactly_one_node_claims_the_stream(
    nodes: Make,
) -> None:
    producer = nodes(lease_s=0.3)
    assert isinstance(producer, RedisBroker)
    others = [nodes(lease_s=0.3) for _ in range(3)]
    stream_id = await new_stream(producer, items=2)
    await lose_producer(producer)
    async with asyncio.timeout(WAIT_S):
        while not (info := await others[0].info(stream_id)) or not info.producer_lost:
            await asyncio.sleep(0.05)  # lease expiry has no event to wait on
    claims = await asyncio.gather(*(o.claim(stream_id) for o in others))
    assert sorted(claims) == [False, False, True]
    winner = others[claims.index(True)]
    info = await winner.info(stream_id)
    assert info is not None
    assert not info.producer_lost  # the winner holds the lease now
    assert await winner.publish(stream_id, "error", b"lost") == 3
    assert await winner.end(stream_id) == 4
    assert not await others[0].claim(stream_id)  # ended: nothing to claim


@pytest.mark.redis
async def test_a_reader_of_a_stream_whose_producer_died_calls_the_lost_handler(
    nodes: Make,
) -> None:
    producer = nodes(lease_s=0.3)
    node = nodes(lease_s=0.3)
    assert isinstance(producer, RedisBroker)
    stream_id = await new_stream(producer, items=1)

    async def end_it(lost: str) -> None:
        assert await node.claim(lost)
        await node.publish(lost, "error", b"producer lost")
        await node.end(lost, "end", b"")

    node.on_lost(end_it)
    subscription = await node.subscribe(stream_id)
    await lose_producer(producer)
    received = await collect(subscription)
    assert [(i.seq, i.kind) for i in received] == [(1, "delta"), (2, "error"), (3, "end")]


@pytest.mark.redis
async def test_a_stream_without_a_lease_field_is_never_taken_for_lost(
    nodes: Make, redis_url: str
) -> None:
    # Streams created before leases existed (a rolling upgrade) have no lease key at
    # all: they must not be ended by the new nodes.
    broker = nodes(lease_s=0.3)
    assert isinstance(broker, RedisBroker)
    stream_id = await new_stream(broker)
    meta_key, _ = broker.keys(stream_id)
    await broker.client.hdel(meta_key, "leased")
    await broker.client.delete(broker.lease_key(stream_id))
    info = await broker.info(stream_id)
    assert info is not None
    assert not info.producer_lost
    assert not await broker.claim(stream_id)


@pytest.mark.redis
async def test_a_crowd_asking_about_one_stream_shares_reads(nodes: Make) -> None:
    producer, node = nodes(), nodes(max_connections=2, pool_timeout_s=5.0)
    assert isinstance(node, RedisBroker)
    stream_id = await new_stream(producer, items=3)
    async with asyncio.timeout(WAIT_S):
        infos = await asyncio.gather(*(node.info(stream_id) for _ in range(2000)))
        subscriptions = await asyncio.gather(
            *(node.subscribe(stream_id, after_seq=1) for _ in range(2000))
        )
    assert {(i.status, i.last_seq) for i in infos if i is not None} == {("live", 3)}
    await producer.end(stream_id)
    readers = await asyncio.gather(*(collect(s) for s in subscriptions))
    assert {tuple(seqs(r)) for r in readers} == {(2, 3, 4)}


# -- retention: the byte budget, audio, expired records -------------------------------


async def test_memory_budget_evicts_the_stream_that_ended_first_not_the_first_made() -> None:
    broker = MemoryBroker(history_bytes=2_500)  # two ended streams of 1,000 bytes fit
    first, second, third = [await new_stream(broker) for _ in range(3)]
    for stream_id in (first, second, third):
        await broker.publish(stream_id, "delta", b"x" * 1_000)
    await broker.end(second)  # ended first, though made second: over the budget, it goes
    await broker.end(first)
    await broker.end(third)
    assert await broker.info(second) is None
    assert await broker.info(first) is not None
    assert await broker.info(third) is not None
    with pytest.raises(StreamExpired) as caught:
        await broker.subscribe(second, 0)
    assert caught.value.data == {"reason": "expired", "lastSeq": 2}
    assert broker.retained_bytes <= 2_500


async def test_memory_budget_never_evicts_a_live_stream() -> None:
    broker = MemoryBroker(history_bytes=2_000)
    live = await new_stream(broker)
    ended = await new_stream(broker, items=1)
    await broker.end(ended)
    for _ in range(10):
        await broker.publish(live, "delta", b"x" * 500)
    assert await broker.info(ended) is None  # evicted to make room
    info = await broker.info(live)
    assert info is not None
    assert (info.first_seq, info.last_seq) == (1, 10)
    assert seqs(await collect_until(await broker.subscribe(live), 10)) == list(range(1, 11))


async def collect_until(subscription: Subscription, last: int) -> list[StreamItem]:
    items: list[StreamItem] = []
    async with asyncio.timeout(WAIT_S), subscription:
        async for item in subscription:
            items.append(item)
            if item.seq == last:
                break
    return items


async def test_memory_audio_has_its_own_retention_and_expired_records_lapse() -> None:
    clock = Clock()
    broker = MemoryBroker(retention_s=600, audio_retention_s=60, clock=clock)
    audio = str(uuid.uuid4())
    await broker.create(audio, owner_tenant="acme", owner_user="alice", kind="audio")
    await broker.publish(audio, "frame", b"\x00" * 960)
    await broker.end(audio)
    text = await new_stream(broker, items=1)
    await broker.end(text)
    clock.now += 59.9
    assert seqs(await collect(await broker.subscribe(audio))) == [1, 2]
    clock.now += 0.2
    assert await broker.info(audio) is None
    assert await broker.info(text) is not None
    record = await broker.expired(audio)
    assert record is not None
    assert (record.last_seq, record.owner_tenant, record.owner_user) == (2, "acme", "alice")
    with pytest.raises(StreamExpired):
        await broker.subscribe(audio)
    clock.now += 600  # the record itself is forgotten after a retention window
    assert await broker.expired(audio) is None
    with pytest.raises(StreamNotFound) as caught:
        await broker.subscribe(audio)
    assert not isinstance(caught.value, StreamExpired)


async def test_memory_ended_history_reads_back_exactly_from_its_packed_form() -> None:
    broker = MemoryBroker()
    stream_id = await new_stream(broker)
    payloads = [bytes([i % 251]) * (i % 7) for i in range(300)]
    kinds = ["delta", "frame", "error"]
    for i, payload in enumerate(payloads):
        await broker.publish(stream_id, kinds[i % 3], payload)
    reader = await broker.subscribe(stream_id, 0)
    assert (await anext(reader)).payload == payloads[0]  # read live, then packed
    await broker.end(stream_id, "end", b"{}")
    rest = await collect(reader)
    replay = await collect(await broker.subscribe(stream_id, 150))
    expected = [StreamItem(i + 1, kinds[i % 3], payload) for i, payload in enumerate(payloads)] + [
        StreamItem(301, "end", b"{}")
    ]
    assert rest == expected[1:]
    assert replay == expected[150:]


async def test_memory_of_retained_streams_stays_under_the_budget_and_out_of_the_collector() -> None:
    budget = 4 << 20
    payload = b'{"jsonrpc":"2.0","method":"stream/delta","params":{"seq":1,"text":" word"}}'

    async def fill(broker: MemoryBroker, streams: int, items: int) -> None:
        for _ in range(streams):
            stream_id = await new_stream(broker)
            for _ in range(items):
                await broker.publish(stream_id, "delta", payload)
            await broker.end(stream_id)

    async def measure() -> tuple[int, int, int, int]:
        broker = MemoryBroker(history_bytes=budget)
        gc.collect()
        tracked = len(gc.get_objects())
        tracemalloc.start()
        try:
            # Forty times the budget goes through; the budget's worth stays.
            await fill(broker, streams=400, items=1_000)
            gc.collect()
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        per_stream = (len(gc.get_objects()) - tracked) / max(1, broker.streams)
        small = MemoryBroker()
        gc.collect()
        before = len(gc.get_objects())
        await fill(small, streams=20, items=5_000)
        gc.collect()
        per_big_stream = (len(gc.get_objects()) - before) / small.streams
        return held, broker.streams, round(per_stream), round(per_big_stream)

    held, streams, per_stream, per_big_stream = await measure()
    assert 0 < streams < 400  # the first ended were evicted
    # The retained history, and what the broker keeps besides, stays within the budget
    # plus a little (the expired records: a few hundred bytes each).
    assert held < budget * 1.25, f"{held / 1e6:.1f} MB traced for a {budget / 1e6:.1f} MB budget"
    # The collector sees a few objects per stream, however many items it holds.
    assert per_stream <= 8
    assert per_big_stream <= 8


@pytest.mark.redis
async def test_redis_audio_retention_and_the_expired_record(nodes: Make) -> None:
    broker = nodes(retention_s=30, audio_retention_s=0.3, idle_timeout_s=30)
    assert isinstance(broker, RedisBroker)
    audio = str(uuid.uuid4())
    await broker.create(audio, owner_tenant="acme", owner_user="alice", kind="audio")
    await broker.publish(audio, "frame", b"\x00" * 960)
    await broker.end(audio)
    text = await new_stream(broker, items=1)
    await broker.end(text)
    for key in broker.keys(audio):
        assert 0 < await broker.client.pttl(key) <= 300
    for key in broker.keys(text):
        assert 10_000 < await broker.client.pttl(key) <= 30_000
    assert await broker.expired(audio) is None  # its history is still there
    async with asyncio.timeout(WAIT_S):
        while await broker.info(audio) is not None:
            await asyncio.sleep(0.02)  # key expiry has no event to wait on
    record = await broker.expired(audio)
    assert record is not None
    assert (record.last_seq, record.owner_tenant, record.owner_user) == (2, "acme", "alice")
    with pytest.raises(StreamExpired) as caught:
        await broker.subscribe(audio, 0)
    assert caught.value.data == {"reason": "expired", "lastSeq": 2}
    # The record outlives the history by one text retention, then goes too.
    assert 20_000 < await broker.client.pttl(broker.gone_key(audio)) <= 30_300
