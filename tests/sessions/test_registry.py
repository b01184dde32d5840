"""The registry and its sweeper: expiry warning, 4001 at expiry, 4008 for a client that
reads nothing, and connection counts per user. Time is driven through ``sweep(now=...)``
and by holding the transport, never by sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.sessions.memory import (
    INITIALIZE,
    WAIT,
    MemoryTransport,
    make_identity,
    make_session,
    request,
    settle,
)
from yamabiko.protocol import errors
from yamabiko.protocol.messages import encode_notification
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.registry import SessionRegistry
from yamabiko.sessions.session import Session
from yamabiko.sessions.transport import WS_4001_TOKEN_EXPIRED, WS_4008_SLOW_CONSUMER


def expiring(transport: MemoryTransport) -> list[dict[str, Any]]:
    return [m for m in transport.messages() if m.get("method") == "session/expiring"]


async def registered(registry: SessionRegistry, transport: MemoryTransport, **kw: Any) -> Session:
    session = make_session(transport, **kw)
    registry.add(session)
    return session


async def test_expiry_warning_is_sent_once_inside_the_window() -> None:
    registry = SessionRegistry()
    transport = MemoryTransport()
    session = await registered(registry, transport, expiry_warning_s=60.0)
    exp = session.identity.exp
    registry.sweep(now=exp - 61)  # before the window
    await settle()
    assert expiring(transport) == []
    registry.sweep(now=exp - 60)  # the window opens
    registry.sweep(now=exp - 30)
    registry.sweep(now=exp - 0.001)
    await transport.wait_frames(1)
    await settle()
    (warning,) = expiring(transport)
    assert "id" not in warning  # a notification
    expires_at = datetime.fromisoformat(warning["params"]["expiresAt"])
    assert expires_at == datetime.fromtimestamp(exp, UTC)
    assert transport.closed is None  # warned, not closed


async def test_expired_token_closes_4001_at_expiry_and_only_once() -> None:
    registry = SessionRegistry()
    transport = MemoryTransport()
    session = await registered(registry, transport)
    registry.sweep(now=session.identity.exp - 0.001)
    await settle()
    assert transport.closed is None
    registry.sweep(now=session.identity.exp)
    assert await transport.wait_closed() == (WS_4001_TOKEN_EXPIRED, "token expired")
    registry.sweep(now=session.identity.exp + 100)
    await settle()
    assert transport.close_calls == 1
    assert session.stats.closed_by_code == {WS_4001_TOKEN_EXPIRED: 1}


async def test_token_found_expired_closes_without_a_warning() -> None:
    registry = SessionRegistry()
    transport = MemoryTransport()
    session = await registered(registry, transport)
    registry.sweep(now=session.identity.exp + 5)
    assert (await transport.wait_closed())[0] == WS_4001_TOKEN_EXPIRED
    assert expiring(transport) == []


async def test_sweep_uses_the_wall_clock_by_default() -> None:
    registry = SessionRegistry()
    expired = MemoryTransport()
    fresh = MemoryTransport()
    await registered(registry, expired, identity=make_identity(ttl_s=-1))
    await registered(registry, fresh, identity=make_identity(ttl_s=3600))
    registry.sweep()
    assert (await expired.wait_closed())[0] == WS_4001_TOKEN_EXPIRED
    await settle()
    assert fresh.closed is None
    assert fresh.frames == []


async def test_refresh_moves_expiry_and_rearms_the_warning() -> None:
    later = make_identity(ttl_s=7200)

    async def verify(token: str) -> Identity:
        if token != "good":
            raise errors.Unauthorized("token refused")
        return later

    registry = SessionRegistry()
    transport = MemoryTransport()
    session = await registered(registry, transport, verify_token=verify)
    first_exp = session.identity.exp
    await session.receive(INITIALIZE)
    registry.sweep(now=first_exp - 10)
    await session.receive(request(1, "session/refresh", {"token": "good"}))
    await transport.wait_frames(3)
    refreshed = transport.messages()[2]
    assert refreshed["id"] == 1
    assert datetime.fromisoformat(refreshed["result"]["expiresAt"]) == datetime.fromtimestamp(
        later.exp, UTC
    )
    registry.sweep(now=first_exp + 1)  # the old expiry no longer applies
    await settle()
    assert transport.closed is None
    registry.sweep(now=later.exp - 10)  # warned again for the new token
    await settle()
    assert len(expiring(transport)) == 2
    registry.sweep(now=later.exp)
    assert (await transport.wait_closed())[0] == WS_4001_TOKEN_EXPIRED


async def test_client_that_reads_nothing_is_closed_4008() -> None:
    registry = SessionRegistry()
    slow, reading, patient = MemoryTransport(), MemoryTransport(), MemoryTransport()
    stuck = await registered(registry, slow, slow_consumer_s=0.0)
    fine = await registered(registry, reading, slow_consumer_s=0.0)
    waiting = await registered(registry, patient, slow_consumer_s=30.0)
    for transport, session in ((slow, stuck), (patient, waiting)):
        transport.block()
        session.notify("test/item", {"n": 1})
        await transport.wait_writing()
    await fine.outbound.send(encode_notification("test/item", {"n": 1}))
    now = stuck.identity.exp - 3600  # far from expiry
    registry.sweep(now=now)
    assert await slow.wait_closed() == (WS_4008_SLOW_CONSUMER, "slow consumer")
    await settle()
    assert reading.closed is None  # reads, so never stalled
    assert patient.closed is None  # stalled, but not for 30 s
    assert stuck.stats.closed_by_code == {WS_4008_SLOW_CONSUMER: 1}
    registry.sweep(now=now)
    await settle()
    assert slow.close_calls == 1


async def test_closed_sessions_are_skipped() -> None:
    registry = SessionRegistry()
    transport = MemoryTransport()
    session = await registered(registry, transport)
    session.shutdown()
    registry.sweep(now=session.identity.exp + 1)
    await settle()
    assert transport.closed is None
    assert transport.frames == []


async def test_one_slow_close_does_not_hold_up_the_sweep() -> None:
    class SlowClose(MemoryTransport):
        def __init__(self) -> None:
            super().__init__()
            self.release_close = asyncio.Event()

        async def close(self, code: int, reason: str) -> None:
            await self.release_close.wait()  # the client never answers the close
            await super().close(code, reason)

    registry = SessionRegistry()
    slow = SlowClose()
    other = MemoryTransport()
    first = await registered(registry, slow)
    await registered(registry, other)
    registry.sweep(now=first.identity.exp + 1)  # returns at once: closes run as tasks
    assert (await other.wait_closed())[0] == WS_4001_TOKEN_EXPIRED
    assert first.closing
    slow.release_close.set()
    assert (await slow.wait_closed())[0] == WS_4001_TOKEN_EXPIRED


def test_sessions_are_added_and_removed_once() -> None:
    registry = SessionRegistry()

    def new(sub: str, tid: str) -> Session:
        return make_session(identity=make_identity(sub, tid))

    a1, a2, a3 = new("alice", "acme"), new("alice", "acme"), new("alice", "globex")
    b1 = new("bob", "acme")
    for session in (a1, a2, a3, b1):
        registry.add(session)
    assert len(registry) == 4
    registry.remove(a1)
    registry.remove(a1)  # twice: removed once
    assert len(registry) == 3
    registry.remove(a2)
    assert len(registry) == 2
    assert set(registry.sessions) == {a3.id, b1.id}


@pytest.mark.parametrize("count", [1, 50])
async def test_sweep_handles_many_sessions(count: int) -> None:
    registry = SessionRegistry()
    transports = [MemoryTransport() for _ in range(count)]
    sessions = [await registered(registry, t) for t in transports]
    registry.sweep(now=max(s.identity.exp for s in sessions) + 1)
    async with asyncio.timeout(WAIT):
        codes = [(await t.wait_closed())[0] for t in transports]
    assert codes == [WS_4001_TOKEN_EXPIRED] * count
    assert len(registry) == count  # the server unregisters when the connection ends
