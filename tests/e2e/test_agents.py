"""Agents, presets and agent secrets over a real socket and a real SQLite store."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
import pytest

from tests.support import Running
from yamabiko.client import Client, RemoteError
from yamabiko.schema.objects import TenantId
from yamabiko.server.logs import JsonFormatter

SECRET_A = "sk-test-AAAA-plaintext-never-leaks-0001"
SECRET_B = "sk-test-BBBB-plaintext-never-leaks-0002"
ACME = TenantId("acme")


async def error_of(client: Client, method: str, params: Any) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await client.call(method, params)
    return info.value


async def code_of(client: Client, method: str, params: Any) -> int:
    return (await error_of(client, method, params)).wire_code


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def admin_token(server: Running, tenant: str = "acme") -> str:
    return server.token("root", tenant, scopes=["agent", "chat", "admin"])


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
        assert (agent["name"], agent["owner"], agent["tenantId"]) == ("Beatsmith", "alice", "acme")
        assert (agent["model"], agent["temperature"], agent["skills"]) == (
            "local/default",
            0.5,
            ["drums"],
        )
        assert agent["createdAt"] == agent["updatedAt"]
        agent_id = agent["id"]
        assert await client.call("agents/get", {"agentId": agent_id}) == agent
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
        assert set(replies[0]) == {"agentId", "name", "createdAt", "updatedAt"}
        assert (replies[0]["agentId"], replies[0]["name"]) == (agent_id, "OPENAI_API_KEY")
        listed = await client.call("agents/secrets/list", {"agentId": agent_id})
        assert [s["name"] for s in listed["items"]] == ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
        assert all(set(s) == {"agentId", "name", "createdAt", "updatedAt"} for s in listed["items"])
        # Setting again replaces the value: still one secret by that name.
        again = await client.call(
            "agents/secrets/set", {"agentId": agent_id, "name": "OPENAI_API_KEY", "value": SECRET_A}
        )
        assert again["createdAt"] == replies[0]["createdAt"]
        assert at(again["updatedAt"]) > at(replies[0]["updatedAt"])
        updated = await client.call(
            "agents/update", {"agentId": agent_id, "name": "Beatsmith II", "model": None}
        )
        assert (updated["name"], updated["model"], updated["skills"]) == (
            "Beatsmith II",
            None,
            ["drums"],
        )
        assert updated["createdAt"] == agent["createdAt"]
        assert at(updated["updatedAt"]) > at(agent["updatedAt"])
        assert (await client.call("agents/list", {}))["items"] == [updated]
        assert await client.call(
            "agents/secrets/delete", {"agentId": agent_id, "name": "OPENAI_API_KEY"}
        ) == {"deleted": True}
        gone = await error_of(
            client, "agents/secrets/delete", {"agentId": agent_id, "name": "OPENAI_API_KEY"}
        )
        assert (gone.wire_code, gone.message) == (
            -32004,
            f"secret not found: {agent_id}/OPENAI_API_KEY",
        )
        listed_after = await client.call("agents/secrets/list", {"agentId": agent_id})
        assert [s["name"] for s in listed_after["items"]] == ["ANTHROPIC_API_KEY"]
        assert await client.call("agents/delete", {"agentId": agent_id}) == {"deleted": True}
        missing = await error_of(client, "agents/get", {"agentId": agent_id})
        assert (missing.wire_code, missing.message) == (-32004, f"agent not found: {agent_id}")
        assert await code_of(client, "agents/delete", {"agentId": agent_id}) == -32004
        assert await code_of(client, "agents/secrets/list", {"agentId": agent_id}) == -32004

    store = server.app.services.store
    set_events = await store.audit.list(ACME, action="secret.set")
    assert [(e.subject, e.target, e.outcome) for e in reversed(set_events.items)] == [
        ("alice", f"{agent_id}/OPENAI_API_KEY", "ok"),
        ("alice", f"{agent_id}/ANTHROPIC_API_KEY", "ok"),
        ("alice", f"{agent_id}/OPENAI_API_KEY", "ok"),
    ]
    delete_events = await store.audit.list(ACME, action="secret.delete")
    assert [e.target for e in delete_events.items] == [f"{agent_id}/OPENAI_API_KEY"]

    # Never a value: not in any response, audit event or log line, nor in the database.
    everything = json.dumps([replies, again, listed, listed_after])
    everything += msgspec.json.encode([set_events, delete_events]).decode()
    assert SECRET_A not in everything
    assert SECRET_B not in everything
    assert any(getattr(r, "method", None) == "agents/secrets/set" for r in caplog.records)
    for record in caplog.records:
        line = JsonFormatter().format(record)
        assert SECRET_A not in line
        assert SECRET_B not in line
    database = server.data_dir / "yamabiko.db"
    files = [database, database.with_name("yamabiko.db-wal")]
    assert all(path.exists() for path in files)
    data = b"".join(path.read_bytes() for path in files)
    assert b"ANTHROPIC_API_KEY" in data  # the files do hold the secrets' rows...
    assert SECRET_A.encode() not in data  # ...but never a value in plaintext
    assert SECRET_B.encode() not in data


async def test_refused_secrets_do_not_echo_the_value(server: Running) -> None:
    value = "sk-test-CCCC-plaintext-never-leaks-0003"
    async with await server.client() as client:
        agent_id = (await client.call("agents/create", {"name": "v"}))["id"]
        refused = [
            await error_of(
                client, "agents/secrets/set", {"agentId": agent_id, "name": "1BAD", "value": value}
            ),
            await error_of(
                client,
                "agents/secrets/set",
                {"agentId": agent_id, "name": "K", "value": value * 300},  # > 8 KiB
            ),
            await error_of(
                client, "agents/secrets/set", {"agentId": "nope", "name": "K", "value": value}
            ),
        ]
        assert [e.wire_code for e in refused] == [-32602, -32602, -32004]
        assert "$.name" in refused[0].message
        assert "$.value" in refused[1].message
        assert refused[2].message == "agent not found: nope"
        for error in refused:
            assert value not in f"{error.message} {error.data!r}"
        assert (await client.call("agents/secrets/list", {"agentId": agent_id}))["items"] == []


async def test_presets_and_create_from_preset(server: Running) -> None:
    async with await server.client() as client:
        presets = (await client.call("agents/presets"))["items"]
        assert [p["id"] for p in presets] == [
            "music-producer",
            "mixing-engineer",
            "lyricist",
            "secretary",
        ]
        for preset in presets:
            assert preset["name"]
            assert preset["description"]
            assert len(preset["personality"]) > 40
            assert len(preset["systemPrompt"]) > 200
            assert 0 <= preset["temperature"] <= 2
        skills = {p["id"]: set(p["skills"]) for p in presets}
        assert "music" in skills["music-producer"]
        assert "mixing" in skills["mixing-engineer"]
        assert "lyrics" in skills["lyricist"]
        assert "scheduling" in skills["secretary"]

        lyricist = presets[2]
        agent = await client.call(
            "agents/create", {"name": "Words", "preset": "lyricist", "temperature": 0.2}
        )
        assert (agent["personality"], agent["systemPrompt"], agent["skills"]) == (
            lyricist["personality"],
            lyricist["systemPrompt"],
            lyricist["skills"],
        )
        assert agent["temperature"] == 0.2  # what the caller gives wins over the preset
        cleared = await client.call(
            "agents/create",
            {"name": "Plain", "preset": "secretary", "temperature": None, "skills": []},
        )
        assert (cleared["temperature"], cleared["skills"]) == (None, [])
        assert cleared["systemPrompt"] == presets[3]["systemPrompt"]
        unknown = await error_of(client, "agents/create", {"name": "x", "preset": "nope"})
        assert unknown.wire_code == -32602
        assert "$.preset" in unknown.message


async def test_validation_names_the_field(server: Running) -> None:
    async with await server.client() as client:
        agent = await client.call("agents/create", {"name": "v"})
        assert (agent["personality"], agent["model"], agent["temperature"]) == ("", None, None)
        ref = {"agentId": agent["id"]}
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("agents/secrets/set", {**ref, "name": "bad name", "value": "x"}, "$.name"),
            ("agents/secrets/delete", {**ref, "name": "a-b"}, "$.name"),
            ("agents/update", {**ref, "temperature": 7}, "$.temperature"),
            ("agents/create", {"name": "t", "temperature": -0.1}, "$.temperature"),
            ("agents/create", {"name": ""}, "$.name"),
            ("agents/create", {}, "name"),
            ("agents/create", {"name": "s", "skills": "drums"}, "$.skills"),
            ("agents/update", {**ref, "name": None}, "$.name"),
            ("agents/list", {"limit": 0}, "$.limit"),
        ]  # fmt: skip
        for method, params, path in cases:
            error = await error_of(client, method, params)
            assert error.wire_code == -32602, (method, params)
            assert path in error.message, (method, params, error.message)
        assert await code_of(client, "agents/list", {"cursor": "garbage"}) == -32602


async def test_mcp_server_ids_must_be_the_tenants(server: Running) -> None:
    store = server.app.services.store
    ours = await store.mcp_servers.add(ACME, name="daw-tools", transport="http", url="http://x")
    theirs = await store.mcp_servers.add(
        TenantId("other"), name="daw-tools", transport="http", url="http://y"
    )
    async with await server.client() as client:
        agent = await client.call("agents/create", {"name": "m", "mcpServerIds": [ours.id]})
        assert agent["mcpServerIds"] == [ours.id]
        refused = await error_of(
            client, "agents/create", {"name": "m", "mcpServerIds": [ours.id, theirs.id]}
        )
        assert (refused.wire_code, refused.message) == (
            -32004,
            f"MCP server not found: {theirs.id}",
        )
        params = {"agentId": agent["id"], "mcpServerIds": [theirs.id]}
        assert await code_of(client, "agents/update", params) == -32004
        assert (await client.call("agents/get", {"agentId": agent["id"]}))["mcpServerIds"] == [
            ours.id
        ]
        cleared = await client.call("agents/update", {"agentId": agent["id"], "mcpServerIds": []})
        assert cleared["mcpServerIds"] == []
        # An unknown agent is "agent not found", whatever the ids.
        unknown = await error_of(
            client, "agents/update", {"agentId": "nope", "mcpServerIds": [theirs.id]}
        )
        assert unknown.message == "agent not found: nope"


async def test_list_pages_through_the_callers_agents(server: Running) -> None:
    async with await server.client() as alice:
        made = [(await alice.call("agents/create", {"name": f"a{i}"}))["id"] for i in range(3)]
        seen: list[str] = []
        cursor = None
        while True:
            page = await alice.call("agents/list", {"limit": 2, "cursor": cursor})
            assert len(page["items"]) <= 2
            seen += [a["id"] for a in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == made  # oldest first, each once
    async with await server.client(sub="bob") as bob:
        await bob.call("agents/create", {"name": "bobs"})
        assert [a["name"] for a in (await bob.call("agents/list", {}))["items"]] == ["bobs"]
    async with await Client.connect(server.url, token=admin_token(server)) as admin:
        everyone = (await admin.call("agents/list", {}))["items"]
        assert [a["owner"] for a in everyone] == ["alice"] * 3 + ["bob"]


async def test_other_tenants_and_users_get_not_found(server: Running) -> None:
    async with await server.client() as alice:
        agent_id = (await alice.call("agents/create", {"name": "mine"}))["id"]
        await alice.call("agents/secrets/set", {"agentId": agent_id, "name": "K", "value": "v1"})
    calls = [
        ("agents/get", {"agentId": agent_id}),
        ("agents/update", {"agentId": agent_id, "name": "stolen"}),
        ("agents/delete", {"agentId": agent_id}),
        ("agents/secrets/set", {"agentId": agent_id, "name": "K", "value": "v"}),
        ("agents/secrets/list", {"agentId": agent_id}),
        ("agents/secrets/delete", {"agentId": agent_id, "name": "K"}),
    ]
    outsiders = [
        await server.client(sub="eve", tenant="other"),
        # Even an admin of another tenant.
        await Client.connect(server.url, token=admin_token(server, "other")),
        # Another user of the same tenant, without admin.
        await server.client(sub="bob"),
    ]
    for outsider in outsiders:
        async with outsider:
            for method, params in calls:
                error = await error_of(outsider, method, params)
                assert (error.wire_code, error.message) == (
                    -32004,
                    f"agent not found: {agent_id}",
                ), method
            assert (await outsider.call("agents/list", {}))["items"] == []
    # None of that changed anything; a tenant admin sees and manages the tenant's agents.
    async with await Client.connect(server.url, token=admin_token(server)) as admin:
        agent = await admin.call("agents/get", {"agentId": agent_id})
        assert (agent["name"], agent["owner"]) == ("mine", "alice")
        secrets = await admin.call("agents/secrets/list", {"agentId": agent_id})
        assert [s["name"] for s in secrets["items"]] == ["K"]
        renamed = await admin.call("agents/update", {"agentId": agent_id, "name": "renamed"})
        assert (renamed["name"], renamed["owner"]) == ("renamed", "alice")
        assert await admin.call("agents/delete", {"agentId": agent_id}) == {"deleted": True}
    store = server.app.services.store
    assert (await store.audit.list(TenantId("other"), action="secret.set")).items == []


async def test_missing_scope_is_forbidden(server: Running) -> None:
    async with await Client.connect(server.url, token=server.token(scopes=["chat"])) as client:
        for method, params in (
            ("agents/create", {"name": "x"}),
            ("agents/list", {}),
            ("agents/presets", {}),
            ("agents/secrets/set", {"agentId": "a", "name": "K", "value": "v"}),
        ):
            assert await code_of(client, method, params) == -32003, method
