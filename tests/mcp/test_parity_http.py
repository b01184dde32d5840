"""The MCP definition on the Streamable HTTP face of an in-process node, through the
SDK's client: the checks of :mod:`tests.mcp.parity`; MCP sessions counted with the
sockets; resumption of a dropped GET stream with ``Last-Event-ID`` (and never into
another session's events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.mcp import parity
from tests.support import Running, running_server
from yamabiko.client.client import Client
from yamabiko.server.mcp_http import McpHttp, backend_of


@asynccontextmanager
async def http_node(tmp_path: Path) -> AsyncIterator[tuple[Running, McpHttp]]:
    async with running_server(tmp_path, handshakes_per_second=0) as node:
        face = McpHttp(backend_of(node.app), "127.0.0.1", 0)
        await face.start()
        try:
            yield node, face
        finally:
            await face.stop()


@asynccontextmanager
async def sdk_face(node: Running, face: McpHttp) -> AsyncIterator[tuple[parity.SdkFace, Client]]:
    sdk = parity.SdkFace()
    headers = {"Authorization": f"Bearer {node.token()}"}
    helper = await node.client()
    try:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(face.url, http_client=http) as (read, write, *_),
            ClientSession(
                read, write, message_handler=sdk.on_message, logging_callback=sdk.on_log
            ) as session,
        ):
            await session.initialize()
            sdk.session = session
            yield sdk, helper
    finally:
        await helper.close()


@asynccontextmanager
async def http_face(tmp_path: Path) -> AsyncIterator[tuple[parity.SdkFace, Client]]:
    async with http_node(tmp_path) as (node, face), sdk_face(node, face) as pair:
        yield pair


async def test_resources(tmp_path: Path) -> None:
    async with http_face(tmp_path) as (face, helper):
        await parity.check_resources(face, helper)


async def test_subscription(tmp_path: Path) -> None:
    async with http_face(tmp_path) as (face, helper):
        await parity.check_subscription(face, helper)


async def test_prompts(tmp_path: Path) -> None:
    async with http_face(tmp_path) as (face, _):
        await parity.check_prompts(face)


async def test_completion(tmp_path: Path) -> None:
    async with http_face(tmp_path) as (face, helper):
        await parity.check_completion(face, helper)


async def test_logging(tmp_path: Path) -> None:
    async with http_face(tmp_path) as (face, _):
        await parity.check_logging(face)


async def test_progress(tmp_path: Path) -> None:
    async with http_face(tmp_path) as (face, _):
        await parity.check_progress(face)


def mcp_sessions(node: Running) -> int:
    return sum(1 for s in node.app.registry.sessions.values() if s.subprotocol == "mcp")


async def test_mcp_sessions_are_counted_with_the_sockets(tmp_path: Path) -> None:
    async with http_node(tmp_path) as (node, face):
        async with sdk_face(node, face) as (sdk, _):
            await sdk.call("prompts/list", {})
            assert mcp_sessions(node) == 1
            # The helper socket and the MCP session.
            total = len(node.app.registry)
            assert total == 2
            async with httpx2.AsyncClient() as http:
                metrics = (await http.get(node.http + "/metrics")).text
            assert f"yamabiko_connections {float(total)}" in metrics
        # The client's DELETE on leaving gives the MCP session back.
        assert mcp_sessions(node) == 0


# Resumability, over raw HTTP (what a client's SSE reader sees).

ACCEPT = "application/json, text/event-stream"


async def _post(
    http: httpx2.AsyncClient, url: str, body: dict[str, Any], session_id: str | None = None
) -> httpx2.Response:
    headers = {"Accept": ACCEPT, "Mcp-Protocol-Version": "2025-11-25"}
    if session_id is not None:
        headers["Mcp-Session-Id"] = session_id
    return await http.post(url, json=body, headers=headers)


async def _open_session(http: httpx2.AsyncClient, url: str) -> str:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    response = await _post(http, url, init)
    assert response.status_code == 200, response.text
    session_id = response.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await _post(http, url, note, session_id)).status_code == 202
    return session_id


async def _events(response: httpx2.Response) -> AsyncIterator[tuple[str | None, Any]]:
    """(event id, JSON data or None) for each SSE event."""
    event_id: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "":
            text = "\n".join(data)
            yield event_id, json.loads(text) if text else None
            data = []


async def _subscribe(http: httpx2.AsyncClient, url: str, session_id: str, uri: str) -> None:
    body = {"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": uri}}
    response = await _post(http, url, body, session_id)
    assert response.status_code == 200, response.text


async def _next_update(events: AsyncIterator[tuple[str | None, Any]], uri: str) -> str:
    """The id of the next event telling that ``uri`` changed."""
    async with asyncio.timeout(parity.WAIT_S):
        while True:
            event_id, message = await anext(events)
            if message is None or message.get("method") != "notifications/resources/updated":
                continue
            if message["params"]["uri"] == uri:
                assert event_id is not None
                return event_id


async def test_a_dropped_get_stream_is_resumed_with_last_event_id(tmp_path: Path) -> None:
    async with http_node(tmp_path) as (node, face):
        helper = await node.client()
        headers = {"Authorization": f"Bearer {node.token()}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            session_id = await _open_session(http, face.url)
            first = await helper.call("conversations/create", {"title": "seen"})
            second = await helper.call("conversations/create", {"title": "missed"})
            first_uri = f"yamabiko://conversations/{first['id']}"
            second_uri = f"yamabiko://conversations/{second['id']}"
            await _subscribe(http, face.url, session_id, first_uri)
            await _subscribe(http, face.url, session_id, second_uri)
            get_headers = {
                "Accept": "text/event-stream",
                "Mcp-Session-Id": session_id,
                "Mcp-Protocol-Version": "2025-11-25",
            }
            async with http.stream("GET", face.url, headers=get_headers) as stream:
                assert stream.status_code == 200
                await helper.call("chat/send", {"conversationId": first["id"], "message": "hi"})
                last_id = await _next_update(_events(stream), first_uri)
            # Dropped. Meanwhile the other conversation gets a message and a reply: the
            # updates are stored, with no stream to carry them.
            ended = helper.subscribe("stream/end")
            await helper.call("chat/send", {"conversationId": second["id"], "message": "away"})
            await helper.next(ended, timeout=parity.WAIT_S)
            resumed = {**get_headers, "Last-Event-ID": last_id}
            async with http.stream("GET", face.url, headers=resumed) as stream:
                assert stream.status_code == 200
                events = _events(stream)
                replayed = [await _next_update(events, second_uri) for _ in range(2)]
            assert last_id not in replayed
            assert len(set(replayed)) == 2

            # Another session may not resume from this session's events.
            other = await _open_session(http, face.url)
            stolen = {**get_headers, "Mcp-Session-Id": other, "Last-Event-ID": last_id}
            async with http.stream("GET", face.url, headers=stolen) as stream:
                assert stream.status_code == 404
        await helper.close()


async def test_each_request_has_its_own_tokens_scopes(tmp_path: Path) -> None:
    """One MCP session, two tokens of the same user: each request sees its own
    token's scopes, whichever ran before."""
    async with http_node(tmp_path) as (node, face):
        wide = {"Authorization": f"Bearer {node.token()}"}
        narrow = {"Authorization": f"Bearer {node.token(scopes=['ghost'])}"}
        async with httpx2.AsyncClient(timeout=30) as http:
            http.headers.update(wide)
            session_id = await _open_session(http, face.url)
            listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}

            async def tools(headers: dict[str, str]) -> set[str]:
                http.headers.update(headers)
                response = await _post(http, face.url, listing, session_id)
                assert response.status_code == 200, response.text
                body = response.text
                data = body[body.index("{") :] if "data:" in body else body
                found = json.loads(data.splitlines()[0])
                return {t["name"] for t in found["result"]["tools"]}

            assert "chat" in await tools(wide)
            assert await tools(narrow) == {"ghost_complete"}
            assert "chat" in await tools(wide)
