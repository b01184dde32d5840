"""Malformed input of every kind is answered with the right error, and the socket stays
open: after each bad message the same connection still answers a ping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from tests.support import Running, running_server


@pytest.fixture
async def ws(server: Running) -> AsyncIterator[ClientConnection]:
    async with connect(
        server.url, additional_headers={"Authorization": f"Bearer {server.token()}"}, max_size=None
    ) as conn:
        yield conn


async def reply_to(ws: ClientConnection, data: bytes | str) -> Any:
    await ws.send(data)
    async with asyncio.timeout(5):
        return json.loads(await ws.recv())


async def still_open(ws: ClientConnection) -> None:
    assert await reply_to(ws, '{"jsonrpc":"2.0","id":"alive","method":"ping"}') == {
        "jsonrpc": "2.0",
        "id": "alive",
        "result": {},
    }


CASES = [
    pytest.param(b"not json", -32700, None, id="not-json"),
    pytest.param(b"", -32700, None, id="empty"),
    pytest.param(b'{"jsonrpc":"2.0","method":"ping","id":1', -32700, None, id="truncated"),
    pytest.param(b'{"jsonrpc":"2.0","method":"p\xffng","id":1}', -32700, None, id="invalid-utf8"),
    pytest.param(b"\xff\xfe\x00", -32700, None, id="binary-garbage"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, -32700, None, id="deep-nesting"),
    pytest.param(
        b'{"jsonrpc":"2.0","method":"ping","params":' + b"[" * 50_000 + b"]" * 50_000 + b',"id":7}',
        -32700,
        None,
        id="deep-nesting-in-params",
    ),
    pytest.param(b'"just a string"', -32600, None, id="scalar"),
    pytest.param(b"42", -32600, None, id="number"),
    pytest.param(b"null", -32600, None, id="null"),
    pytest.param(b'{"method":"ping","id":1}', -32600, 1, id="no-jsonrpc"),
    pytest.param(b'{"jsonrpc":"1.0","method":"ping","id":1}', -32600, 1, id="wrong-version"),
    pytest.param(b'{"jsonrpc":"2.0","method":"ping","id":1.5}', -32600, None, id="float-id"),
    pytest.param(b'{"jsonrpc":"2.0","method":"ping","id":{"a":1}}', -32600, None, id="object-id"),
    pytest.param(
        b'{"jsonrpc":"2.0","method":"ping","id":2,"params":"x"}', -32600, 2, id="scalar-params"
    ),
    pytest.param(b'{"jsonrpc":"2.0","method":["ping"],"id":3}', -32600, 3, id="method-not-str"),
    pytest.param(b'{"jsonrpc":"2.0","id":4}', -32600, 4, id="no-method"),
    pytest.param(
        b'{"jsonrpc":"2.0","method":"test/sleep","id":5,"params":{}}', -32602, 5, id="missing-field"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","method":"test/sleep","id":6,"params":{"seconds":"1"}}',
        -32602,
        6,
        id="wrong-type",
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","method":"test/sleep","id":8,"params":[1]}',
        -32602,
        8,
        id="positional-params",
    ),
    pytest.param(b'{"jsonrpc":"2.0","method":"no/such","id":9}', -32601, 9, id="unknown-method"),
    pytest.param(b'{"jsonrpc":"2.0","method":"ping","id":null}', -32600, None, id="null-id"),
]


@pytest.mark.parametrize(("data", "code", "expected_id"), CASES)
async def test_bad_message_gets_error_and_socket_stays_open(
    ws: ClientConnection, data: bytes, code: int, expected_id: Any
) -> None:
    await ws.send(INIT)
    await ws.recv()
    # Text frames carry the bytes as they are (websockets does not validate on send).
    await ws.send(data, text=True)
    async with asyncio.timeout(5):
        reply = json.loads(await ws.recv())
    assert reply["jsonrpc"] == "2.0"
    assert reply["error"]["code"] == code, reply
    assert reply["id"] == expected_id
    assert "Traceback" not in reply["error"]["message"]
    await still_open(ws)


INIT = '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"yamabiko/1"}}'


async def test_invalid_params_names_the_field_path(ws: ClientConnection) -> None:
    await reply_to(ws, INIT)
    reply = await reply_to(ws, '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}')
    assert reply["error"] == {
        "code": -32602,
        "message": "Object missing required field protocolVersion",
    }
    reply = await reply_to(
        ws, '{"jsonrpc":"2.0","id":2,"method":"test/sleep","params":{"seconds":[]}}'
    )
    assert reply["error"]["message"] == "Expected float, got array - at $.seconds"


async def test_huge_batch_is_refused_whole(ws: ClientConnection) -> None:
    await reply_to(ws, INIT)
    batch = json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(5000)])
    reply = await reply_to(ws, batch)
    assert reply["error"]["code"] == -32600
    assert "5000" in reply["error"]["message"]
    await still_open(ws)


async def test_largest_allowed_batch_is_answered_in_full(ws: ClientConnection) -> None:
    await reply_to(ws, INIT)
    batch = json.dumps([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(100)])
    reply = await reply_to(ws, batch)
    assert sorted(r["id"] for r in reply) == list(range(100))


async def test_binary_frame_is_read_as_json(ws: ClientConnection) -> None:
    await reply_to(ws, INIT)
    await ws.send(b'{"jsonrpc":"2.0","id":"b","method":"ping"}', text=False)
    async with asyncio.timeout(5):
        assert json.loads(await ws.recv())["id"] == "b"


async def test_before_initialize_only_ping_and_initialize(ws: ClientConnection) -> None:
    assert (await reply_to(ws, '{"jsonrpc":"2.0","id":1,"method":"ping"}'))["result"] == {}
    reply = await reply_to(
        ws, '{"jsonrpc":"2.0","id":2,"method":"test/sleep","params":{"seconds":0}}'
    )
    assert reply["error"]["code"] == -32002
    reply = await reply_to(ws, '{"jsonrpc":"2.0","id":3,"method":"no/such"}')
    assert reply["error"]["code"] == -32601


async def test_message_over_the_limit_closes_1009(tmp_path: Any) -> None:
    async with running_server(tmp_path, max_message_bytes=4096) as server:
        async with connect(
            server.url, additional_headers={"Authorization": f"Bearer {server.token()}"}
        ) as conn:
            await conn.send(INIT)
            await conn.recv()
            await conn.send(
                '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + "a" * 5000 + '"}}'
            )
            with pytest.raises(ConnectionClosedError) as info:
                async with asyncio.timeout(5):
                    await conn.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
        # Other sessions are unaffected.
        client = await server.client()
        async with client:
            assert await client.call("ping") == {}


async def test_unexpected_exception_is_32603_with_error_id(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    async with await server.client() as client:
        with pytest.raises(Exception) as info:
            await client.call("test/fail")
    err = info.value
    assert getattr(err, "wire_code", None) == -32603
    assert getattr(err, "message", None) == "internal error"
    error_id = err.data["errorId"]  # type: ignore[attr-defined]
    assert "secret internal detail" not in json.dumps(err.data)  # type: ignore[attr-defined]
    logged = [r for r in caplog.records if getattr(r, "errorId", None) == error_id]
    assert logged
    assert logged[0].exc_info is not None


async def test_errors_are_logged_at_info_without_params(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    from yamabiko.server.logs import JsonFormatter

    caplog.set_level("INFO", logger="yamabiko")
    async with await server.client() as client:
        with pytest.raises(Exception) as info:
            await client.call("test/sleep", {"seconds": "SECRET-PARAM-VALUE"})
        assert getattr(info.value, "wire_code", None) == -32602
        session_id = client.initialize_result["sessionId"]  # type: ignore[index]
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    failed = [x for x in lines if x["msg"] == "request failed"]
    assert failed
    assert failed[0]["session"] == session_id
    assert failed[0]["code"] == -32602
    assert failed[0]["method"] == "test/sleep"
    assert not any("SECRET-PARAM-VALUE" in json.dumps(x) for x in lines)
    assert not any(server.token() in json.dumps(x) for x in lines)


BINARY_UTF8_CASES = [
    pytest.param(
        b'{"jsonrpc":"2.0","method":"test/sleep","id":1,"params":{"seconds":1,"x":"\xff"}}',
        id="request-params",
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","method":"ghost/open","id":2,"params":{"text":"caf\xc3"}}',
        id="truncated-sequence",
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","method":"ghost/change","params":{"docId":"\xed\xa0\x80","version":1}}',
        id="notification-surrogate",
    ),
    pytest.param(
        b'[{"jsonrpc":"2.0","method":"ping","id":3,"params":{"a":"\xfe"}}]', id="batch-element"
    ),
]


@pytest.mark.parametrize("data", BINARY_UTF8_CASES)
async def test_invalid_utf8_anywhere_in_a_binary_frame_is_a_parse_error(
    ws: ClientConnection, data: bytes
) -> None:
    await reply_to(ws, INIT)
    await ws.send(data)  # bytes: a binary frame, which nothing checks on the way
    async with asyncio.timeout(5):
        reply = json.loads(await ws.recv())
    assert reply == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "parse error: message is not valid UTF-8"},
    }
    await still_open(ws)
