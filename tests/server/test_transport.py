"""The websockets transport's fast path: frames buffered and flushed once per loop
iteration must keep their order and never be lost before a close."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.client import connect

from tests.support import running_server

INIT = '{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"yamabiko/1"}}'


async def test_pipelined_replies_arrive_complete_and_in_order(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, requests_per_second=1e9, request_burst=10**9) as server,
        connect(server.url, additional_headers={"Authorization": f"Bearer {server.token()}"}) as ws,
    ):
        await ws.send(INIT)
        await ws.recv()
        count = 3000
        for i in range(count):
            await ws.send(f'{{"jsonrpc":"2.0","id":{i},"method":"ping"}}')
        ids = []
        async with asyncio.timeout(10):
            for _ in range(count):
                ids.append(json.loads(await ws.recv())["id"])
        assert ids == list(range(count))


async def test_buffered_replies_go_out_before_a_close(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, requests_per_second=1e9, request_burst=10**9) as server,
        connect(server.url, additional_headers={"Authorization": f"Bearer {server.token()}"}) as ws,
    ):
        await ws.send(INIT)
        await ws.recv()
        # A batch answer and a notification flood are both buffered; then the server
        # shuts down (close 1001) right away: nothing queued before it may be lost.
        await ws.send('{"jsonrpc":"2.0","id":1,"method":"test/flood","params":{"count":200}}')
        received = []
        async with asyncio.timeout(10):
            while len(received) < 201:
                received.append(json.loads(await ws.recv()))
        await server.app.stop()
        assert [m["params"]["i"] for m in received if "method" in m] == list(range(200))
        assert any(m.get("id") == 1 for m in received)
        async with asyncio.timeout(5):
            await ws.wait_closed()
        assert ws.close_code == 1001
