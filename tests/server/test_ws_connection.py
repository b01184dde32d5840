"""The owned socket layer over real sockets: message framing and limits, backpressure
that stays with the slow client, keepalive, the close handshake, and refused
handshakes that leave nothing behind."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import Running, p99, running_server, serve_process
from yamabiko.sessions.transport import WS_4001_TOKEN_EXPIRED

INIT = '{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"yamabiko/1"}}'
PING = '{"jsonrpc":"2.0","id":%d,"method":"ping"}'


def _auth(server: Running, sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(sub)}"}


def _upgrade(path: str = "/ws", **headers: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    fields = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items() if v)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@asynccontextmanager
async def raw_socket(
    port: int, request: bytes
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]]:
    """A TCP connection that sent ``request``; yields the reader, the writer and the
    head of the answer (status line and headers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        yield reader, writer, head
    finally:
        writer.close()


def _mask(payload: bytes, opcode: int = 0x1, *, fin: bool = True) -> bytes:
    """One masked client frame."""
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2)
    return bytes([(0x80 if fin else 0) | opcode]) + length + key + masked


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame (unmasked): (opcode, payload)."""
    async with asyncio.timeout(5):
        first, second = await reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2))
        elif size == 127:
            size = int.from_bytes(await reader.readexactly(8))
        return first & 0x0F, await reader.readexactly(size)


async def test_fragmented_and_binary_messages_are_answered(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as server,
        connect(server.url, additional_headers=_auth(server)) as ws,
    ):
        # The initialize request in five fragments, then a ping in a binary frame.
        pieces = [INIT[i : i + 20] for i in range(0, len(INIT), 20)]
        await ws.send(pieces)
        async with asyncio.timeout(5):
            reply = json.loads(await ws.recv())
        assert reply["id"] == "i"
        assert "result" in reply
        await ws.send((PING % 7).encode())
        async with asyncio.timeout(5):
            pong = json.loads(await ws.recv())
        assert pong == {"jsonrpc": "2.0", "id": 7, "result": {}}


@pytest.mark.parametrize("compression", [False, True])
async def test_compression_is_negotiated_only_when_on(tmp_path: Path, compression: bool) -> None:
    async with (
        running_server(tmp_path, compression=compression) as server,
        connect(server.url, additional_headers=_auth(server), compression="deflate") as ws,
    ):
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ("permessage-deflate" in extensions) is compression
        await ws.send(INIT)
        await ws.recv()
        for i in range(3):
            await ws.send(PING % i)
            async with asyncio.timeout(5):
                assert json.loads(await ws.recv())["id"] == i


async def test_control_frames_between_fragments_and_messages(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as server,
        raw_socket(server.app.port, _upgrade(Authorization=f"Bearer {server.token()}")) as (
            reader,
            writer,
            head,
        ),
    ):
        assert head.startswith(b"HTTP/1.1 101")
        writer.write(_mask(INIT.encode()))
        assert json.loads((await _read_frame(reader))[1])["id"] == "i"
        # A ping from the client inside a fragmented request, then a whole request in
        # the same write: a pong, then both answers, in order.
        first = (PING % 1).encode()
        writer.write(
            _mask(first[:10], fin=False)
            + _mask(b"hello", 0x9)
            + _mask(first[10:], 0x0)
            + _mask((PING % 2).encode())
        )
        assert await _read_frame(reader) == (0xA, b"hello")
        assert json.loads((await _read_frame(reader))[1])["id"] == 1
        assert json.loads((await _read_frame(reader))[1])["id"] == 2
        # A frame with a reserved bit set is a protocol error: close 1002.
        writer.write(bytes([0xC1]) + _mask(b"{}")[1:])
        opcode, payload = await _read_frame(reader)
        assert opcode == 0x8
        assert int.from_bytes(payload[:2]) == 1002


@pytest.mark.parametrize("fragmented", [False, True])
async def test_a_message_over_the_limit_closes_1009(tmp_path: Path, fragmented: bool) -> None:
    async with (
        running_server(tmp_path, max_message_bytes=4096) as server,
        connect(server.url, additional_headers=_auth(server), max_size=None) as ws,
    ):
        await ws.send(INIT)
        await ws.recv()
        await ws.send(PING % 1)  # under the limit: served
        assert json.loads(await ws.recv())["id"] == 1
        big = "x" * 5000
        await ws.send([big[:2000], big[2000:4000], big[4000:]] if fragmented else big)
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1009


async def test_a_client_that_stops_reading_pauses_only_its_own_session(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, requests_per_second=1e9, request_burst=10**9) as server,
        connect(server.url, additional_headers=_auth(server, "bob")) as other,
    ):
        await other.send(INIT)
        await other.recv()
        # The stalled client: a raw socket that sends a flood request and reads nothing.
        async with raw_socket(
            server.app.port, _upgrade(Authorization=f"Bearer {server.token()}")
        ) as (
            _reader,
            writer,
            head,
        ):
            assert head.startswith(b"HTTP/1.1 101")
            writer.write(_mask(INIT.encode()))
            flood = b'{"jsonrpc":"2.0","id":2,"method":"test/flood","params":'
            flood += b'{"count":5000,"size":8000}}'
            writer.write(_mask(flood))
            session = None
            async with asyncio.timeout(10):
                while session is None or session.outbound.stalled_for(time.monotonic()) < 0.2:
                    stalled = [
                        s
                        for s in server.app.registry.sessions.values()
                        if s.identity.sub == "alice"
                    ]
                    session = stalled[0] if stalled else None
                    await asyncio.sleep(0.05)  # polling a condition, bounded above
            # The stalled session is held back by its socket: its queue waits...
            assert session.outbound.queued_bytes > 0
            # ...while the other client's round trips stay fast.
            latencies = []
            for i in range(200):
                started = time.perf_counter()
                await other.send(PING % i)
                async with asyncio.timeout(5):
                    await other.recv()
                latencies.append(time.perf_counter() - started)
            assert p99(latencies) < 0.1, p99(latencies)


async def test_keepalive_drops_a_peer_that_answers_no_ping(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, ping_interval_s=0.2, ping_timeout_s=0.3) as server,
        connect(server.url, additional_headers=_auth(server, "bob")) as alive,
    ):
        await alive.send(INIT)
        await alive.recv()
        async with raw_socket(
            server.app.port, _upgrade(Authorization=f"Bearer {server.token()}")
        ) as (
            reader,
            writer,
            head,
        ):
            assert head.startswith(b"HTTP/1.1 101")
            writer.write(_mask(INIT.encode()))
            # Reads the server's frames (its reply, its pings) but never answers a ping.
            async with asyncio.timeout(5):
                with pytest.raises(ConnectionResetError):
                    while await reader.read(4096):
                        pass
                    raise ConnectionResetError  # an orderly end counts too
            async with asyncio.timeout(5):
                while any(s.identity.sub == "alice" for s in server.app.registry.sessions.values()):
                    await asyncio.sleep(0.02)
        # A client that answers pings is kept, well past several ping timeouts.
        await alive.send(PING % 1)
        async with asyncio.timeout(5):
            assert json.loads(await alive.recv())["id"] == 1


async def test_close_handshake_both_ways(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        # The client closes: the server answers with the same code and ends the stream.
        async with connect(server.url, additional_headers=_auth(server)) as ws:
            await ws.send(INIT)
            await ws.recv()
            async with asyncio.timeout(5):
                await ws.close(4000, "bye")
        assert ws.close_code == 4000
        assert ws.close_reason == "bye"
        async with asyncio.timeout(5):
            while server.app.registry.sessions:
                await asyncio.sleep(0.02)
        # The server closes (a revoked token): the client sees the code and reason, and
        # its reply completes the handshake.
        async with connect(server.url, additional_headers=_auth(server)) as ws:
            await ws.send(INIT)
            await ws.recv()
            (session,) = server.app.registry.sessions.values()
            server.app.registry.close_later(session, WS_4001_TOKEN_EXPIRED, "token revoked")
            async with asyncio.timeout(5):
                await ws.wait_closed()
        assert ws.close_code == WS_4001_TOKEN_EXPIRED
        assert ws.close_reason == "token revoked"


async def test_http_endpoints_share_the_port(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        for path, status in [("/health/live", b"200"), ("/schema/openrpc.json", b"200")]:
            request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            async with raw_socket(server.app.port, request) as (reader, _writer, head):
                assert head.split(b" ")[1] == status
                async with asyncio.timeout(5):
                    await reader.read()  # the server closes after its answer


async def _refused(port: int, request: bytes) -> int:
    async with raw_socket(port, request) as (reader, _writer, head):
        async with asyncio.timeout(10):
            await reader.read()
        return int(head.split(b" ")[1])


@pytest.mark.slow  # ~30 s on a loaded two-core machine
async def test_ten_thousand_refused_handshakes_leave_memory_flat(tmp_path: Path) -> None:
    env = {
        "YAMABIKO_HANDSHAKES_PER_SECOND": "0",
        "YAMABIKO_ALLOWED_ORIGINS": "https://app.example",
        "YAMABIKO_MAX_CONNECTIONS_PER_USER": "1",
    }
    with serve_process(tmp_path, env) as node:
        port = int(node.ws_url.rsplit(":", 1)[1].split("/")[0])
        held = f"Bearer {node.token('held')}"
        # Refusals after admission hold a place until the connection is gone: each
        # uses a user of its own, so that they refuse for their own reason.
        tokens = [f"Bearer {node.token(f'u{i}')}" for i in range(64)]

        def request(i: int) -> tuple[bytes, int]:
            ok = tokens[i % len(tokens)]
            kind = i % 6
            if kind == 0:
                return _upgrade(), 401
            if kind == 1:
                return _upgrade(Authorization="Bearer not.a.token"), 401
            if kind == 2:
                return _upgrade(Authorization=ok, Upgrade="", Connection=""), 426
            if kind == 3:
                return _upgrade(Authorization=ok, **{"Sec-WebSocket-Key": "short"}), 400
            if kind == 4:
                return _upgrade(Authorization=ok, Origin="https://evil.example"), 403
            return _upgrade(Authorization=held), 429

        # One open connection of "held" makes every further one of theirs too many.
        async with connect(node.ws_url, additional_headers={"Authorization": held}):

            async def storm(count: int) -> None:
                async def one(i: int) -> None:
                    data, status = request(i)
                    assert await _refused(port, data) == status, data

                for start in range(0, count, 48):
                    await asyncio.gather(*(one(i) for i in range(start, min(count, start + 48))))

            await storm(1200)  # warm up: allocator pools, caches
            before = node.rss_bytes()
            await storm(10_000)
            growth = node.rss_bytes() - before
        assert growth < 15 * 1024 * 1024, growth
