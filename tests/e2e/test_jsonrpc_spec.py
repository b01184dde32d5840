"""The JSON-RPC 2.0 specification's examples, adapted to our methods, over a real socket.

Each test sends exact bytes with a raw ``websockets`` client and checks the exact reply,
as a non-Python peer would see it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Running

INIT = b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"yamabiko/1"}}'


@pytest.fixture
async def ws(server: Running) -> AsyncIterator[ClientConnection]:
    async with connect(
        server.url, additional_headers={"Authorization": f"Bearer {server.token()}"}
    ) as conn:
        await conn.send(INIT)
        reply = json.loads(await conn.recv())
        assert reply["result"]["protocolVersion"] == "yamabiko/1"
        yield conn


async def roundtrip(ws: ClientConnection, data: bytes | str) -> Any:
    await ws.send(data)
    async with asyncio.timeout(5):
        return json.loads(await ws.recv())


async def assert_silent(ws: ClientConnection) -> None:
    """Nothing comes back: prove it by a ping sent after, answered first."""
    await ws.send('{"jsonrpc":"2.0","id":"probe","method":"ping"}')
    async with asyncio.timeout(5):
        assert json.loads(await ws.recv()) == {"jsonrpc": "2.0", "id": "probe", "result": {}}


async def test_call_with_named_params(ws: ClientConnection) -> None:
    reply = await roundtrip(
        ws, '{"jsonrpc":"2.0","method":"test/sleep","params":{"seconds":0},"id":3}'
    )
    assert reply == {"jsonrpc": "2.0", "id": 3, "result": {"slept": 0}}


async def test_string_ids_are_echoed(ws: ClientConnection) -> None:
    reply = await roundtrip(ws, '{"jsonrpc":"2.0","method":"ping","id":"abc-1"}')
    assert reply == {"jsonrpc": "2.0", "id": "abc-1", "result": {}}


async def test_notification_gets_no_reply(ws: ClientConnection) -> None:
    await ws.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    await ws.send('{"jsonrpc":"2.0","method":"ping"}')  # a notification: no id
    await assert_silent(ws)


async def test_nonexistent_method(ws: ClientConnection) -> None:
    reply = await roundtrip(ws, '{"jsonrpc":"2.0","method":"foobar","id":"1"}')
    assert reply == {
        "jsonrpc": "2.0",
        "id": "1",
        "error": {"code": -32601, "message": "method not found: foobar"},
    }


async def test_invalid_json(ws: ClientConnection) -> None:
    reply = await roundtrip(ws, '{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]')
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700


async def test_invalid_request_object(ws: ClientConnection) -> None:
    reply = await roundtrip(ws, '{"jsonrpc":"2.0","method":1,"params":"bar"}')
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600


async def test_batch_invalid_json(ws: ClientConnection) -> None:
    reply = await roundtrip(
        ws, '[{"jsonrpc":"2.0","method":"ping","id":"1"},{"jsonrpc":"2.0","method"]'
    )
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700


async def test_empty_batch(ws: ClientConnection) -> None:
    reply = await roundtrip(ws, "[]")
    assert reply == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "invalid request: empty batch"},
    }


async def test_invalid_batch_of_one(ws: ClientConnection) -> None:
    reply = await roundtrip(ws, "[1]")
    assert isinstance(reply, list)
    assert len(reply) == 1
    assert reply[0]["id"] is None
    assert reply[0]["error"]["code"] == -32600


async def test_invalid_batch_of_three(ws: ClientConnection) -> None:
    reply = await roundtrip(ws, "[1,2,3]")
    assert [r["error"]["code"] for r in reply] == [-32600, -32600, -32600]


async def test_mixed_batch(ws: ClientConnection) -> None:
    reply = await roundtrip(
        ws,
        json.dumps(
            [
                {"jsonrpc": "2.0", "method": "test/sleep", "params": {"seconds": 0.05}, "id": "1"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "method": "ping", "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "test/sleep", "params": {"seconds": "x"}, "id": "9"},
            ]
        ),
    )
    by_id = {r["id"]: r for r in reply}
    assert len(reply) == 5
    assert by_id["1"]["result"] == {"slept": 0.05}
    assert by_id["2"]["result"] == {}
    assert by_id[None]["error"]["code"] == -32600
    assert by_id["5"]["error"]["code"] == -32601
    assert by_id["9"]["error"] == {
        "code": -32602,
        "message": "Expected float, got str - at $.seconds",
    }


async def test_all_notification_batch_gets_nothing(ws: ClientConnection) -> None:
    await ws.send('[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","method":"nope"}]')
    await assert_silent(ws)
