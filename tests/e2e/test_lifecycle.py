"""Session lifecycle over a real socket: initialize, refresh and expiry, cancellation,
progress, server-to-client requests, many sessions, slow readers, shutdown."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import Running, running_server
from yamabiko.client import Client, RemoteError


async def test_initialize_returns_session_id_and_limits(server: Running) -> None:
    async with await server.client() as client:
        result = client.initialize_result
    assert result is not None
    assert result["protocolVersion"] == "yamabiko/1"
    assert result["serverInfo"]["name"] == "yamabiko"
    assert len(result["sessionId"]) == 32
    assert result["limits"] == {
        "maxMessageBytes": 1048576,
        "maxRunningRequests": 8,
        "maxSubscriptions": 32,
        "outboundQueueBytes": 4194304,
        "pingIntervalMs": 20000,
        "requestsPerSecond": 100.0,
        "requestBurst": 200,
        "maxBatchItems": 100,
        "maxAudioStreams": 4,
        "maxDocuments": 16,
    }


async def test_mcp_version_is_negotiated(server: Running) -> None:
    async with await server.client(protocol_version="2025-06-18") as client:
        assert client.initialize_result["protocolVersion"] == "2025-06-18"  # type: ignore[index]
    async with await server.client(protocol_version="1999-01-01") as client:
        assert client.initialize_result["protocolVersion"] == "yamabiko/1"  # type: ignore[index]


async def test_second_initialize_is_refused(server: Running) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as info:
            await client.initialize()
        assert info.value.wire_code == -32600


async def test_missing_scope_is_forbidden(server: Running) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as info:
            await client.call("test/admin")
    assert info.value.wire_code == -32003
    assert "admin" in info.value.message
    async with await Client.connect(server.url, token=server.token(scopes=["admin"])) as admin:
        assert await admin.call("test/admin") == {}


async def test_expiry_warns_then_closes_4001_unless_refreshed(server: Running) -> None:
    lapsing = await Client.connect(server.url, token=server.token(ttl_s=2), initialize=False)
    warnings = lapsing.subscribe("session/expiring")  # before anything can arrive
    await lapsing.initialize()
    refreshed = await Client.connect(server.url, token=server.token(ttl_s=2))
    # Inside the 60 s window from the start: the warning comes at once.
    note = await lapsing.next(warnings, timeout=5)
    expires = datetime.fromisoformat(note.params["expiresAt"])
    assert expires.tzinfo is not None
    result = await refreshed.call("session/refresh", {"token": server.token(ttl_s=600)})
    assert datetime.fromisoformat(result["expiresAt"]) > expires
    async with asyncio.timeout(6):
        await lapsing.wait_closed()
    assert lapsing.close_code == 4001
    assert datetime.now(UTC) >= expires  # not before the token's own expiry
    assert await refreshed.call("ping") == {}
    await refreshed.close()
    await lapsing.close()


async def test_refresh_refuses_another_user_and_bad_tokens(server: Running) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as info:
            await client.call("session/refresh", {"token": server.token(sub="mallory")})
        assert info.value.wire_code == -32001
        with pytest.raises(RemoteError) as info:
            await client.call("session/refresh", {"token": "garbage"})
        assert info.value.wire_code == -32001
        assert await client.call("ping") == {}


async def test_cancellation_answers_32800(server: Running) -> None:
    async with await server.client() as client:
        request_id, waiter = await client.start("test/sleep", {"seconds": 30})
        started = time.monotonic()
        await client.cancel(request_id, "user pressed stop")
        with pytest.raises(RemoteError) as info:
            await client.result(request_id, waiter, timeout=5)
        assert info.value.wire_code == -32800
        assert time.monotonic() - started < 2
        # A cancel for an unknown id is ignored; the session goes on.
        await client.cancel(12345)
        assert await client.call("ping") == {}


async def test_running_request_limit_is_announced_and_enforced(server: Running) -> None:
    async with await server.client() as client:
        limit = client.initialize_result["limits"]["maxRunningRequests"]  # type: ignore[index]
        started = [await client.start("test/sleep", {"seconds": 30}) for _ in range(limit)]
        with pytest.raises(RemoteError) as info:
            await client.call("test/sleep", {"seconds": 0})
        assert info.value.wire_code == -32029
        assert info.value.data["retryAfterMs"] >= 0
        assert await client.call("ping") == {}  # inline methods are not counted
        for request_id, _ in started:
            await client.cancel(request_id)
        for request_id, waiter in started:
            with pytest.raises(RemoteError):
                await client.result(request_id, waiter, timeout=5)
        assert await client.call("test/sleep", {"seconds": 0}) == {"slept": 0}


async def test_progress_notifications(server: Running) -> None:
    async with await server.client() as client:
        progress = client.subscribe("notifications/progress")
        result = await client.call("test/steps", {"steps": 3, "_meta": {"progressToken": "p1"}})
        assert result == {"count": 3}
        notes = [await client.next(progress) for _ in range(3)]
    assert [n.params for n in notes] == [
        {"progressToken": "p1", "progress": i, "total": 3, "message": f"step {i}"}
        for i in (1, 2, 3)
    ]


async def test_server_to_client_request_round_trip(server: Running) -> None:
    async with await server.client() as client:

        @client.on_request("client/applyActions")
        async def apply(params: Any) -> Any:
            return {"applied": len(params["actions"]), "errors": []}

        result = await client.call(
            "test/ask",
            {"method": "client/applyActions", "params": {"runId": "r1", "actions": [1, 2]}},
        )
        assert result == {"answer": {"applied": 2, "errors": []}}
        # A method the client does not serve comes back as the client's error.
        with pytest.raises(RemoteError) as info:
            await client.call("test/ask", {"method": "client/unknown"})
        assert info.value.wire_code == -32601


async def test_two_hundred_concurrent_sessions(server: Running) -> None:
    async def one(i: int) -> Any:
        async with await server.client(sub=f"user-{i}") as client:
            return await client.call("test/sleep", {"seconds": 0.2})

    async with asyncio.timeout(30):
        results = await asyncio.gather(*(one(i) for i in range(200)))
    assert results == [{"slept": 0.2}] * 200
    assert server.app.stats.connections_total >= 200


async def test_slow_reader_does_not_delay_a_fast_one(tmp_path: Path) -> None:
    async with running_server(tmp_path, slow_consumer_timeout_s=1.5) as server:
        headers = {"Authorization": f"Bearer {server.token(sub='slow')}"}
        async with connect(server.url, additional_headers=headers, max_queue=1) as slow:
            await slow.send(
                '{"jsonrpc":"2.0","id":0,"method":"initialize",'
                '"params":{"protocolVersion":"yamabiko/1"}}'
            )
            await slow.recv()
            # ~20 MB of notifications the slow client never reads.
            await slow.send(
                '{"jsonrpc":"2.0","id":1,"method":"test/flood",'
                '"params":{"count":20000,"size":1000}}'
            )
            async with await server.client(sub="fast") as fast:
                worst = 0.0
                for _ in range(200):
                    t = time.perf_counter()
                    assert await fast.call("ping") == {}
                    worst = max(worst, time.perf_counter() - t)
                assert worst < 0.1, f"a ping took {worst * 1000:.1f} ms"
                # The slow client is closed with 4008 once it has read nothing for 1.5 s,
                # and the fast one is still served.
                async with asyncio.timeout(10):
                    while server.app.stats.closed_by_code.get(4008, 0) < 1:
                        await asyncio.sleep(0.05)
                assert await fast.call("ping") == {}
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(10):
                    while True:
                        await slow.recv()


async def test_shutdown_finishes_running_requests_then_closes_1001(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        client = await server.client()
        request_id, waiter = await client.start("test/sleep", {"seconds": 0.3})
        await asyncio.sleep(0.05)  # let the request start before the shutdown begins
        await server.app.stop()
        assert await client.result(request_id, waiter, timeout=5) == {"slept": 0.3}
        async with asyncio.timeout(5):
            await client.wait_closed()
        assert client.close_code == 1001
        await client.close()


async def test_burst_over_the_bucket_is_rate_limited(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, requests_per_second=5, request_burst=3) as server,
        await server.client() as client,
    ):
        limits = client.initialize_result["limits"]  # type: ignore[index]
        assert (limits["requestsPerSecond"], limits["requestBurst"]) == (5.0, 3)
        for _ in range(2):  # initialize took the first token
            await client.call("test/sleep", {"seconds": 0})
        with pytest.raises(RemoteError) as info:
            await client.call("test/sleep", {"seconds": 0})
        assert info.value.wire_code == -32029
        retry_ms = info.value.data["retryAfterMs"]
        assert 100 <= retry_ms <= 200  # one token at 5/s is 200 ms away, at most
        assert await client.call("ping") == {}  # the keepalive is exempt
        # Another user has a bucket of their own.
        async with await server.client(sub="bob") as bob:
            assert await bob.call("test/sleep", {"seconds": 0}) == {"slept": 0}
        await asyncio.sleep(retry_ms / 1000)
        assert await client.call("test/sleep", {"seconds": 0}) == {"slept": 0}


async def test_refresh_with_an_exp_past_any_date_is_an_invalid_token(server: Running) -> None:
    far = server.token(extra={"exp": 1e30})
    async with await server.client() as client:
        with pytest.raises(RemoteError) as info:
            await client.call("session/refresh", {"token": far})
        assert info.value.wire_code == -32001
        assert "exp" in str(info.value)
        assert await client.call("ping") == {}
    status = None
    try:
        async with connect(server.url, additional_headers={"Authorization": f"Bearer {far}"}):
            pass
    except Exception as exc:  # InvalidStatus: the handshake is refused too
        status = getattr(getattr(exc, "response", None), "status_code", None)
    assert status == 401
