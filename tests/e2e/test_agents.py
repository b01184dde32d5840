"""Agents and their secrets over a real socket and a real SQLite store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import Running
from yamabiko.client import Client, RemoteError
from yamabiko.server.logs import JsonFormatter

SECRET_A = "sk-test-AAAA-plaintext-never-leaks-0001"
SECRET_B = "sk-test-BBBB-plaintext-never-leaks-0002"


async def code_of(client: Client, method: str, params: Any) -> int:
    with pytest.raises(RemoteError) as info:
        await client.call(method, params)
    return info.value.wire_code


async def test_agent_lifecycle_with_secrets(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="yamabiko")
    async with await server.client() as client:
        agent = await client.call(
            "agents/create",
            {
                "name": "Beatsmith",
                "personality": "terse",
                "model": "local/default",
                "temperature": 0.5,
                "skills": ["drums"],
            },
        )
        assert agent["name"] == "Beatsmith"
        assert agent["owner"] == "alice"
        assert agent["createdAt"].endswith("Z") or "+00:00" in agent["createdAt"]
        agent_id = agent["id"]
        replies = [
            await client.call(
                "agents/secrets/set",
                {"agentId": agent_id, "name": "OPENAI_API_KEY", "value": SECRET_A},
            ),
            await client.call(
                "agents/secrets/set",
                {"agentId": agent_id, "name": "ANTHROPIC_API_KEY", "value": SECRET_B},
            ),
        ]
        listed = await client.call("agents/secrets/list", {"agentId": agent_id})
        assert [s["name"] for s in listed["items"]] == ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
        updated = await client.call(
            "agents/update", {"agentId": agent_id, "name": "Beatsmith II", "model": None}
        )
        assert (updated["name"], updated["model"], updated["skills"]) == (
            "Beatsmith II",
            None,
            ["drums"],
        )
        assert (await client.call("agents/list", {}))["items"][0]["id"] == agent_id
        assert await client.call(
            "agents/secrets/delete", {"agentId": agent_id, "name": "OPENAI_API_KEY"}
        ) == {"deleted": True}
        listed_after = await client.call("agents/secrets/list", {"agentId": agent_id})
        assert [s["name"] for s in listed_after["items"]] == ["ANTHROPIC_API_KEY"]
        assert await client.call("agents/delete", {"agentId": agent_id}) == {"deleted": True}
        assert await code_of(client, "agents/get", {"agentId": agent_id}) == -32004
    # Never a value: not in any response, not in any log line, not in the database file.
    everything = json.dumps([replies, listed, listed_after])
    assert SECRET_A not in everything
    assert SECRET_B not in everything
    for record in caplog.records:
        line = JsonFormatter().format(record)
        assert SECRET_A not in line
        assert SECRET_B not in line
    for path in server.data_dir.glob("yamabiko.db*"):
        data = path.read_bytes()
        assert SECRET_A.encode() not in data
        assert SECRET_B.encode() not in data
    store = server.app.services.store
    events = await store.audit.list("acme", action="secret.set")  # type: ignore[arg-type]
    assert {e.target for e in events.items} == {
        f"{agent_id}/OPENAI_API_KEY",
        f"{agent_id}/ANTHROPIC_API_KEY",
    }


async def test_presets_and_create_from_preset(server: Running) -> None:
    async with await server.client() as client:
        presets = (await client.call("agents/presets"))["items"]
        ids = {p["id"] for p in presets}
        assert {"music-producer", "mixing-engineer", "lyricist", "secretary"} <= ids
        assert all(p["systemPrompt"] and p["personality"] for p in presets)
        agent = await client.call(
            "agents/create", {"name": "Words", "preset": "lyricist", "temperature": 0.2}
        )
        lyricist = next(p for p in presets if p["id"] == "lyricist")
        assert agent["systemPrompt"] == lyricist["systemPrompt"]
        assert agent["temperature"] == 0.2  # what the caller gave wins
        assert await code_of(client, "agents/create", {"name": "x", "preset": "nope"}) == -32602


async def test_validation_names_the_field(server: Running) -> None:
    async with await server.client() as client:
        agent = await client.call("agents/create", {"name": "v"})
        with pytest.raises(RemoteError) as info:
            await client.call(
                "agents/secrets/set", {"agentId": agent["id"], "name": "bad name", "value": "x"}
            )
        assert info.value.wire_code == -32602
        assert "$.name" in info.value.message
        with pytest.raises(RemoteError) as info:
            await client.call("agents/update", {"agentId": agent["id"], "temperature": 7})
        assert info.value.wire_code == -32602
        assert "$.temperature" in info.value.message


async def test_other_tenants_and_users_get_not_found(server: Running) -> None:
    async with await server.client() as alice:
        agent_id = (await alice.call("agents/create", {"name": "mine"}))["id"]
    calls = [
        ("agents/get", {"agentId": agent_id}),
        ("agents/update", {"agentId": agent_id, "name": "stolen"}),
        ("agents/delete", {"agentId": agent_id}),
        ("agents/secrets/set", {"agentId": agent_id, "name": "K", "value": "v"}),
        ("agents/secrets/list", {"agentId": agent_id}),
    ]
    async with await server.client(sub="eve", tenant="other") as eve:
        for method, params in calls:
            assert await code_of(eve, method, params) == -32004, method
        # Even an admin of another tenant.
    async with await Client.connect(
        server.url, token=server.token("root", "other", scopes=["agent", "admin"])
    ) as other_admin:
        assert await code_of(other_admin, "agents/get", {"agentId": agent_id}) == -32004
    async with await server.client(sub="bob") as bob:  # same tenant, another user
        assert await code_of(bob, "agents/get", {"agentId": agent_id}) == -32004
        assert (await bob.call("agents/list", {}))["items"] == []
    async with await Client.connect(
        server.url, token=server.token("root", "acme", scopes=["agent", "admin"])
    ) as admin:  # a tenant admin sees the tenant's agents
        assert (await admin.call("agents/get", {"agentId": agent_id}))["owner"] == "alice"


async def test_missing_scope_is_forbidden(server: Running) -> None:
    async with await Client.connect(server.url, token=server.token(scopes=["chat"])) as client:
        assert await code_of(client, "agents/create", {"name": "x"}) == -32003
