"""One set of MCP checks run on every face (socket, Streamable HTTP, stdio bridge): the
faces serve one definition (docs/mcp.md), so each check is written once, against a
:class:`Face` (a method call and the notifications received), and each face's test
module runs them all.

A helper socket :class:`~yamabiko.client.client.Client` of the same user makes what
the checks read (an agent, a conversation, a chat turn that changes it)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

import mcp_types as types
import pytest
from mcp.client.session import ClientSession

from yamabiko.client.client import Client

WAIT_S = 30.0
TEMPLATES = {
    "yamabiko://conversations/{conversationId}",
    "yamabiko://agents/{agentId}",
    "yamabiko://models/{model}",
    "yamabiko://music/{kind}/{key}/{style}/{seed}.json",
    "yamabiko://music/{kind}/{key}/{style}/{seed}.mid",
    "yamabiko://audio/{engine}/{voice}/{text}.wav",
}


class Face(Protocol):
    notes: asyncio.Queue[tuple[str, dict[str, Any]]]
    """Every notification received: (method, params)."""

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The result; raises :class:`FaceError` for an error response."""
        ...

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, progress: list[str] | None = None
    ) -> dict[str, Any]:
        """``tools/call``; with ``progress``, asks for progress and appends each
        message received."""
        ...


class FaceError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


async def next_note(face: Face, method: str) -> dict[str, Any]:
    """The next notification of ``method`` (others are skipped), bounded."""
    async with asyncio.timeout(WAIT_S):
        while True:
            got, params = await face.notes.get()
            if got == method:
                return params


class SocketFace:
    """The socket with subprotocol ``mcp``, through our client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.notes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._sub = client.subscribe()
        self._pump = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for note in self.client.iterate(self._sub):
            params = note.params if isinstance(note.params, dict) else {}
            await self.notes.put((note.method, params))

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        from yamabiko.protocol.errors import RemoteError

        try:
            result = await self.client.call(method, params, timeout=WAIT_S)
        except RemoteError as exc:
            raise FaceError(exc.remote_code, exc.message) from None
        assert isinstance(result, dict)
        return result

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, progress: list[str] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if progress is None:
            return await self.call("tools/call", params)
        params["_meta"] = {"progressToken": "p1"}
        result = await self.call("tools/call", params)
        # Progress is sent before the result on one socket: it is all queued by now.
        while not self.notes.empty():
            method, note = self.notes.get_nowait()
            if method == "notifications/progress" and note.get("progressToken") == "p1":
                progress.append(str(note.get("message")))
        return result

    async def close(self) -> None:
        self._pump.cancel()


class SdkFace:
    """An MCP client of the SDK (over Streamable HTTP or stdio)."""

    def __init__(self) -> None:
        self.notes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.session: ClientSession | None = None

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            await self.notes.put((message.method, {"uri": message.params.uri}))

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        await self.notes.put(("notifications/message", params.model_dump(mode="json")))

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        from mcp.shared.exceptions import MCPError

        session = self.session
        assert session is not None
        try:
            result = await _SDK_CALLS[method](session, params)
        except MCPError as exc:
            raise FaceError(exc.code, exc.message) from None
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        assert isinstance(dumped, dict)
        return dumped

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, progress: list[str] | None = None
    ) -> dict[str, Any]:
        session = self.session
        assert session is not None

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            assert progress is not None
            progress.append(str(message))

        result = await session.call_tool(
            name, arguments, progress_callback=None if progress is None else on_progress
        )
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        assert isinstance(dumped, dict)
        return dumped


def _ref(ref: dict[str, Any]) -> types.ResourceTemplateReference | types.PromptReference:
    if ref["type"] == "ref/prompt":
        return types.PromptReference(name=ref["name"])
    return types.ResourceTemplateReference(uri=ref["uri"])


_SDK_CALLS: dict[str, Callable[[ClientSession, dict[str, Any]], Awaitable[Any]]] = {
    "resources/list": lambda s, p: s.list_resources(),
    "resources/templates/list": lambda s, p: s.list_resource_templates(),
    "resources/read": lambda s, p: s.read_resource(p["uri"]),
    # The SDK's helpers for these warn (deprecated in the 2026 era): the requests
    # themselves are those of the versions the faces speak.
    "resources/subscribe": lambda s, p: s.send_request(
        types.SubscribeRequest(params=types.SubscribeRequestParams(uri=p["uri"])),
        types.EmptyResult,
    ),
    "resources/unsubscribe": lambda s, p: s.send_request(
        types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=p["uri"])),
        types.EmptyResult,
    ),
    "prompts/list": lambda s, p: s.list_prompts(),
    "prompts/get": lambda s, p: s.get_prompt(p["name"], p.get("arguments")),
    "completion/complete": lambda s, p: s.complete(_ref(p["ref"]), p["argument"]),
    "logging/setLevel": lambda s, p: s.send_request(
        types.SetLevelRequest(params=types.SetLevelRequestParams(level=p["level"])),
        types.EmptyResult,
    ),
    "tools/list": lambda s, p: s.list_tools(),
}


# The checks


async def check_resources(face: Face, helper: Client) -> None:
    """Listed and read: the caller's agent and conversation, the model catalogue; the
    templates; generated music as JSON and MIDI (the same seed, the same part);
    speech as WAV; another user's conversation is not found."""
    agent = await helper.call("agents/create", {"name": "Parity", "preset": "lyricist"})
    conversation = await helper.call("conversations/create", {"title": "parity"})
    listed = await face.call("resources/list", {})
    uris = {r["uri"] for r in listed["resources"]}
    assert "yamabiko://models" in uris
    assert f"yamabiko://agents/{agent['id']}" in uris
    assert f"yamabiko://conversations/{conversation['id']}" in uris

    templates = await face.call("resources/templates/list", {})
    assert {t["uriTemplate"] for t in templates["resourceTemplates"]} == TEMPLATES

    read = await face.call("resources/read", {"uri": f"yamabiko://agents/{agent['id']}"})
    body = json.loads(read["contents"][0]["text"])
    assert body["name"] == "Parity"
    assert read["contents"][0]["mimeType"] == "application/json"
    read = await face.call(
        "resources/read", {"uri": f"yamabiko://conversations/{conversation['id']}"}
    )
    assert json.loads(read["contents"][0]["text"])["conversation"]["title"] == "parity"
    models = await face.call("resources/read", {"uri": "yamabiko://models"})
    assert "models" in json.loads(models["contents"][0]["text"])

    base = f"yamabiko://music/bassline/{quote('A minor')}/rock/7"
    part = await face.call("resources/read", {"uri": base + ".json"})
    notes = json.loads(part["contents"][0]["text"])["notes"]
    assert notes
    again = await face.call("resources/read", {"uri": base + ".json"})
    assert json.loads(again["contents"][0]["text"])["notes"] == notes
    midi = await face.call("resources/read", {"uri": base + ".mid"})
    assert midi["contents"][0]["mimeType"] == "audio/midi"
    assert base64.b64decode(midi["contents"][0]["blob"])[:4] == b"MThd"

    speech = await face.call(
        "resources/read", {"uri": f"yamabiko://audio/singer/default/{quote('la la la')}.wav"}
    )
    assert speech["contents"][0]["mimeType"] == "audio/wav"
    wav = base64.b64decode(speech["contents"][0]["blob"])
    assert wav[:4] == b"RIFF"
    assert wav[8:12] == b"WAVE"
    assert len(wav) > 1000

    with pytest.raises(FaceError) as refused:
        await face.call("resources/read", {"uri": "yamabiko://conversations/nope"})
    assert refused.value.code == -32004


async def check_subscription(face: Face, helper: Client) -> None:
    """A subscribed conversation tells when a message is added to it; after
    unsubscribing, nothing more."""
    conversation = await helper.call("conversations/create", {"title": "watched"})
    uri = f"yamabiko://conversations/{conversation['id']}"
    assert await face.call("resources/subscribe", {"uri": uri}) == {}
    await helper.call("chat/send", {"conversationId": conversation["id"], "message": "hello there"})
    updated = await next_note(face, "notifications/resources/updated")
    assert updated["uri"] == uri
    await face.call("resources/unsubscribe", {"uri": uri})
    with pytest.raises(FaceError) as refused:
        await face.call("resources/subscribe", {"uri": "yamabiko://models"})
    assert refused.value.code == -32602


async def check_prompts(face: Face) -> None:
    listed = await face.call("prompts/list", {})
    names = {p["name"] for p in listed["prompts"]}
    assert {"lyricist", "compose"} <= names
    compose = next(p for p in listed["prompts"] if p["name"] == "compose")
    assert [a["name"] for a in compose["arguments"]] == ["kind", "key", "style"]
    got = await face.call(
        "prompts/get",
        {"name": "compose", "arguments": {"kind": "bassline", "key": "A minor", "style": "funk"}},
    )
    assert got["messages"][0]["content"]["text"] == "Write a bassline in A minor, funk style."
    preset = await face.call("prompts/get", {"name": "lyricist"})
    assert preset["messages"][0]["role"] == "user"
    with pytest.raises(FaceError) as refused:
        await face.call("prompts/get", {"name": "no-such-prompt"})
    assert refused.value.code == -32602


async def check_completion(face: Face, helper: Client) -> None:
    """Values by prefix for template variables and prompt arguments, from what the
    caller may read."""
    agent = await helper.call("agents/create", {"name": "Completed"})
    conversation = await helper.call("conversations/create", {"title": "completed"})

    async def complete(ref: dict[str, Any], name: str, value: str) -> list[str]:
        got = await face.call(
            "completion/complete", {"ref": ref, "argument": {"name": name, "value": value}}
        )
        values = got["completion"]["values"]
        assert isinstance(values, list)
        return values

    agents_ref = {"type": "ref/resource", "uri": "yamabiko://agents/{agentId}"}
    assert agent["id"] in await complete(agents_ref, "agentId", agent["id"][:6])
    conversations_ref = {
        "type": "ref/resource",
        "uri": "yamabiko://conversations/{conversationId}",
    }
    found = await complete(conversations_ref, "conversationId", conversation["id"][:6])
    assert conversation["id"] in found
    music_ref = {"type": "ref/resource", "uri": "yamabiko://music/{kind}/{key}/{style}/{seed}.mid"}
    keys = await complete(music_ref, "key", "f#")
    assert keys == ["F# major", "F# minor"]
    assert "jazz" in await complete(music_ref, "style", "ja")
    compose = {"type": "ref/prompt", "name": "compose"}
    assert await complete(compose, "kind", "ba") == ["bassline"]
    # Unknown references and arguments complete to nothing (completion is a hint).
    assert await complete({"type": "ref/prompt", "name": "nope"}, "x", "") == []


async def check_logging(face: Face) -> None:
    """Nothing until a level is set; then messages at or above it, for this session."""
    await face.call_tool("ghost_complete", {"text": "the quick brown"})
    assert await face.call("logging/setLevel", {"level": "warning"}) == {}
    await face.call_tool("ghost_complete", {"text": "the quick brown"})
    assert await face.call("logging/setLevel", {"level": "info"}) == {}
    await face.call_tool("music_generate", {"kind": "bassline", "bars": 1})
    # The first message to come is the last call's: the earlier ones sent none.
    message = await next_note(face, "notifications/message")
    assert message["level"] == "info"
    assert message["data"] == {"tool": "music_generate", "event": "finished"}


async def check_progress(face: Face) -> None:
    """``chat`` streams its text as progress; the last message is the whole reply."""
    seen: list[str] = []
    result = await face.call_tool("chat", {"message": "tell me something"}, progress=seen)
    assert not result.get("isError"), result
    text = result["structuredContent"]["text"]
    assert seen
    assert seen[-1] == text
    assert all(text.startswith(s) for s in seen)
