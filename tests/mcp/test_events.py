"""The MCP event store on the broker: stored events are replayed after an id, in order,
only to the session they belong to; on Redis, from another node's broker (what a
resumed stream reads after a restart of its node)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import mcp_types as types
import pytest
from mcp.server.streamable_http import EventMessage

from tests.store.test_broker import Make, brokers
from yamabiko.server.mcp_events import CURRENT, BrokerEventStore, SessionTag


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    kind = str(request.param)
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    async with brokers(kind, url) as build:
        yield build


def note(n: int) -> types.JSONRPCNotification:
    return types.JSONRPCNotification(
        jsonrpc="2.0", method="notifications/resources/updated", params={"uri": f"u{n}"}
    )


async def replay(store: BrokerEventStore, after: str) -> tuple[str | None, list[EventMessage]]:
    got: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        got.append(event)

    stream = await store.replay_events_after(after, send)
    return stream, got


async def test_events_are_replayed_after_an_id_in_order(make: Make) -> None:
    store = BrokerEventStore(make())
    CURRENT.set(SessionTag("acme", "alice", "s1"))
    priming = await store.store_event("_GET_stream", None)
    ids = [await store.store_event("_GET_stream", note(n)) for n in range(3)]
    await store.store_event("7", note(99))  # another stream of the session
    stream, got = await replay(store, priming)
    assert stream == "_GET_stream"
    assert [e.event_id for e in got] == ids
    assert [e.message.params for e in got] == [{"uri": f"u{n}"} for n in range(3)]  # type: ignore[union-attr]
    _, later = await replay(store, ids[1])
    assert [e.event_id for e in later] == ids[2:]


async def test_another_sessions_id_replays_nothing(make: Make) -> None:
    store = BrokerEventStore(make())
    CURRENT.set(SessionTag("acme", "alice", "s1"))
    first = await store.store_event("_GET_stream", None)
    await store.store_event("_GET_stream", note(1))
    CURRENT.set(SessionTag("acme", "mallory", "s2"))
    stream, got = await replay(store, first)
    assert stream is None
    assert got == []
    assert (await replay(store, "not-an-id"))[1] == []


@pytest.mark.redis
async def test_on_redis_another_node_replays_the_events(redis_url: str) -> None:
    async with brokers("redis", redis_url) as make:
        writer, reader = BrokerEventStore(make()), BrokerEventStore(make())
        await _another_node_replays(writer, reader)


async def _another_node_replays(writer: BrokerEventStore, reader: BrokerEventStore) -> None:
    CURRENT.set(SessionTag("acme", "alice", "s1"))
    first = await writer.store_event("_GET_stream", None)
    stored = await writer.store_event("_GET_stream", note(5))
    _, got = await replay(reader, first)
    assert [e.event_id for e in got] == [stored]
