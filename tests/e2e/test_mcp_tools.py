"""MCP servers as tools for agents, end to end: a real MCP server (written with the SDK)
over stdio, a fake LLM that asks for one of its tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeOpenAI, Script
from tests.fakes.server import RecordedRequest, ResponseWriter
from tests.support import running_server
from yamabiko.client import RemoteError

TOOL_SERVER = str(Path(__file__).parents[1] / "mcp" / "tool_server.py")
CONTEXT: dict[str, Any] = {
    "project": {
        "name": "Demo", "tempo": 120, "key": "C major", "timeSignature": "4/4",
        "tracks": [{"id": "lead", "name": "Lead", "type": "midi", "volume": 0.8, "pan": 0.0,
                    "muted": False, "notes": []}],
    }
}  # fmt: skip
ADMIN = ["agent", "admin", "chat"]


class Answers(FakeOpenAI):
    """A fake model that gives one scripted answer per request, in order."""

    def __init__(self, answers: list[str]) -> None:
        super().__init__(Script(tokens=[answers[0]]))
        self.answers = answers

    async def handle(self, request: RecordedRequest, response: ResponseWriter) -> None:
        index = min(len(self.requests) - 1, len(self.answers) - 1)
        self.script = Script(tokens=[self.answers[index]])
        await super().handle(request, response)


async def add_tool_server(client: Any) -> dict[str, Any]:
    return await client.call(  # type: ignore[no-any-return]
        "mcp/servers/add",
        {"name": "tools", "transport": "stdio", "command": sys.executable, "args": [TOOL_SERVER]},
    )


async def test_servers_are_added_tested_listed_and_removed(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, mcp_stdio_allowlist=(sys.executable,)) as server,
        await server.client(scopes=ADMIN) as admin,
    ):
        added = await add_tool_server(admin)
        probe = await admin.call("mcp/servers/test", {"serverId": added["id"]})
        assert probe["ok"] is True
        names = {tool["name"] for tool in probe["tools"]}
        assert {"transpose", "chord_tones"} <= names
        assert probe["latencyMs"] > 0
        listed = await admin.call("mcp/servers/list")
        assert [s["id"] for s in listed["items"]] == [added["id"]]
        with pytest.raises(RemoteError) as refused:
            await admin.call(
                "mcp/servers/add", {"name": "sh", "transport": "stdio", "command": "/bin/sh"}
            )
        assert refused.value.wire_code == -32602
        assert await admin.call("mcp/servers/remove", {"serverId": added["id"]}) == {"ok": True}
        async with await server.client() as user:  # no admin: cannot add
            with pytest.raises(RemoteError) as forbidden:
                await add_tool_server(user)
            assert forbidden.value.wire_code == -32003


async def test_an_agent_calls_its_mcp_tool_and_uses_the_result(tmp_path: Path) -> None:
    ask_tool = json.dumps(
        {"tool": {"name": "tools.transpose", "arguments": {"pitch": 60, "semitones": 7}}}
    )
    act = json.dumps(
        {"actions": [{"type": "addNotes", "description": "Play the fifth", "trackId": "lead",
                      "notes": [{"pitch": 67, "start": 0, "duration": 1, "velocity": 90}]}],
         "summary": "Added the fifth the tool found."}
    )  # fmt: skip
    async with Answers([ask_tool, act]) as fake:
        env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        async with (
            running_server(tmp_path, env=env, mcp_stdio_allowlist=(sys.executable,)) as server,
            await server.client(scopes=ADMIN) as client,
        ):
            added = await add_tool_server(client)
            agent = await client.call(
                "agents/create",
                {"name": "Theory", "model": "openai/gpt-4.1-mini", "mcpServerIds": [added["id"]]},
            )
            conversation = await client.call("conversations/create", {})
            result = await client.call(
                "agent/run",
                {
                    "prompt": "add the fifth above middle C",
                    "context": CONTEXT,
                    "agentId": agent["id"],
                    "conversationId": conversation["id"],
                },
            )
            page = await client.call(
                "conversations/messages", {"conversationId": conversation["id"]}
            )
    assert result["actions"][0]["notes"][0]["pitch"] == 67
    assert result["summary"] == "Added the fifth the tool found."
    first, second = fake.requests
    assert "tools.transpose" in first.body["messages"][0]["content"]  # offered in the system
    assert second.body["messages"][-1]["content"] == "Tool result: 67"
    roles = [m["role"] for m in page["items"]]
    assert roles == ["user", "tool", "assistant"]
    recorded = json.loads(page["items"][1]["content"])
    assert recorded == {
        "tool": "tools.transpose",
        "arguments": {"pitch": 60, "semitones": 7},
        "result": "67",
        "isError": False,
    }
