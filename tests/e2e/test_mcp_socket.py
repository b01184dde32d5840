"""MCP on the socket: subprotocol ``mcp``, MCP's ``initialize``, then ``tools/*``."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import soundfile
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Running

TOOLS = {"chat", "agent_run", "music_generate", "ghost_complete", "audio_synthesize"}


async def mcp_session(server: Running, scopes: list[str] | None = None) -> ClientConnection:
    claims = {} if scopes is None else {"scopes": scopes}
    ws = await connect(
        server.url,
        subprotocols=["mcp"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {server.token(**claims)}"},
    )
    assert ws.subprotocol == "mcp"
    init = await rpc(ws, 1, "initialize", {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    })  # fmt: skip
    assert init["result"]["protocolVersion"] == "2025-06-18"
    assert "tools" in init["result"]["capabilities"]
    await ws.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    return ws


async def rpc(ws: ClientConnection, request_id: int, method: str, params: Any) -> dict[str, Any]:
    await ws.send(
        json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    )
    while True:
        message = json.loads(await ws.recv())
        if message.get("id") == request_id:
            return message  # type: ignore[no-any-return]


async def test_a_raw_mcp_session_lists_and_calls_the_tools(server: Running) -> None:
    ws = await mcp_session(server)
    try:
        listed = (await rpc(ws, 2, "tools/list", {}))["result"]["tools"]
        assert {t["name"] for t in listed} == TOOLS
        music = next(t for t in listed if t["name"] == "music_generate")
        assert music["inputSchema"]["type"] == "object"
        assert "kind" in music["inputSchema"]["required"]
        assert music["outputSchema"]["properties"]["notes"]
        called = (await rpc(ws, 3, "tools/call", {
            "name": "music_generate",
            "arguments": {"kind": "bassline", "key": "A minor", "seed": 3},
        }))["result"]  # fmt: skip
        assert "isError" not in called
        assert called["structuredContent"]["notes"]
        assert json.loads(called["content"][0]["text"]) == called["structuredContent"]
        chat = await rpc(ws, 4, "tools/call", {"name": "chat", "arguments": {"message": "Mix?"}})
        reply = chat["result"]["structuredContent"]
        assert reply["finishReason"] == "stop"
        assert len(reply["text"]) > 10
        ghost = (await rpc(ws, 5, "tools/call", {
            "name": "ghost_complete", "arguments": {"text": "Add some compression to the vo"},
        }))["result"]  # fmt: skip
        assert ghost["structuredContent"]["items"][0]["text"].startswith("cal")
        audio = (await rpc(ws, 6, "tools/call", {
            "name": "audio_synthesize",
            "arguments": {"notes": [{"pitch": 69, "start": 0, "duration": 1, "lyric": "la"}]},
        }))["result"]  # fmt: skip
        (content,) = audio["content"]
        assert (content["type"], content["mimeType"]) == ("audio", "audio/wav")
        samples, rate = soundfile.read(io.BytesIO(base64.b64decode(content["data"])))
        assert (len(samples), rate) == (12000, 24000)
        bad = await rpc(ws, 7, "tools/call", {"name": "music_generate", "arguments": {"kind": 5}})
        assert bad["result"]["isError"] is True
        assert "kind" in bad["result"]["content"][0]["text"]
        unknown = await rpc(ws, 8, "tools/call", {"name": "nope", "arguments": {}})
        assert unknown["result"]["isError"] is True
    finally:
        await ws.close()


async def test_tools_follow_the_callers_scopes(server: Running) -> None:
    ws = await mcp_session(server, scopes=["ghost"])
    try:
        listed = (await rpc(ws, 2, "tools/list", {}))["result"]["tools"]
        assert [t["name"] for t in listed] == ["ghost_complete"]
        refused = await rpc(ws, 3, "tools/call", {"name": "chat", "arguments": {"message": "hi"}})
        assert refused["result"]["isError"] is True
        assert "scope" in refused["result"]["content"][0]["text"]
    finally:
        await ws.close()


async def test_conversations_are_resources_and_presets_are_prompts(server: Running) -> None:
    async with await server.client() as client:
        sub = client.subscribe("stream/end")
        sent = await client.call("chat/send", {"message": "Hello, studio"})
        await client.next(sub)
    ws = await mcp_session(server)
    try:
        listed = (await rpc(ws, 2, "resources/list", {}))["result"]["resources"]
        uri = f"yamabiko://conversations/{sent['conversationId']}"
        # The model catalogue, then (no agents here) the conversations.
        assert [r["uri"] for r in listed] == ["yamabiko://models", uri]
        assert listed[1]["mimeType"] == "application/json"
        read = (await rpc(ws, 3, "resources/read", {"uri": uri}))["result"]
        (contents,) = read["contents"]
        body = json.loads(contents["text"])
        assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
        assert body["messages"][0]["content"] == "Hello, studio"
        missing = await rpc(ws, 4, "resources/read", {"uri": "yamabiko://conversations/x"})
        assert missing["error"]["code"] == -32004
        prompts = (await rpc(ws, 5, "prompts/list", {}))["result"]["prompts"]
        assert "music-producer" in {p["name"] for p in prompts}
        prompt = (await rpc(ws, 6, "prompts/get", {"name": "music-producer"}))["result"]
        assert prompt["messages"][0]["role"] == "user"
        assert "music producer" in prompt["messages"][0]["content"]["text"]
    finally:
        await ws.close()


async def test_a_subscribed_conversation_tells_when_it_gets_a_message(server: Running) -> None:
    async with await server.client() as client:
        first = await client.call("conversations/create", {"title": "Watched"})
        other = await client.call("conversations/create", {"title": "Not watched"})
        ws = await mcp_session(server)
        try:
            uri = f"yamabiko://conversations/{first['id']}"
            assert (await rpc(ws, 2, "resources/subscribe", {"uri": uri}))["result"] == {}
            sub = client.subscribe("stream/end")
            await client.call("chat/send", {"message": "nope", "conversationId": other["id"]})
            await client.next(sub)
            await client.call("chat/send", {"message": "hi", "conversationId": first["id"]})
            await client.next(sub)
            updates = []
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("id") == 9:
                    break
                updates.append(message)
            # The user's message, then the finished reply: never the other conversation.
            assert [u["method"] for u in updates] == ["notifications/resources/updated"] * 2
            assert {u["params"]["uri"] for u in updates} == {uri}
            missing = await rpc(ws, 3, "resources/subscribe", {"uri": "yamabiko://x"})
            assert missing["error"]["code"] == -32004
        finally:
            await ws.close()
