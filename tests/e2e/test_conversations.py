"""A conversation's lifecycle over a real socket and a real SQLite store."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Running
from yamabiko.client import Client, RemoteError
from yamabiko.schema.objects import ConversationId, MessageRole, TenantId

ACME = TenantId("acme")


async def error_of(client: Client, method: str, params: Any) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await client.call(method, params)
    return info.value


async def code_of(client: Client, method: str, params: Any) -> int:
    return (await error_of(client, method, params)).wire_code


async def list_ids(client: Client, **params: Any) -> list[str]:
    """Every id ``conversations/list`` gives, one page of one at a time."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await client.call("conversations/list", {**params, "limit": 1, "cursor": cursor})
        assert len(page["items"]) <= 1
        ids += [c["id"] for c in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            return ids


async def test_conversation_lifecycle(server: Running) -> None:
    async with await server.client() as client:
        agent = await client.call("agents/create", {"name": "helper"})
        with_agent = await client.call(
            "conversations/create", {"title": "Chorus ideas", "agentId": agent["id"]}
        )
        assert (with_agent["title"], with_agent["agentId"]) == ("Chorus ideas", agent["id"])
        assert (with_agent["owner"], with_agent["tenantId"], with_agent["archived"]) == (
            "alice",
            "acme",
            False,
        )
        plain = [await client.call("conversations/create", {}) for _ in range(2)]
        assert (plain[0]["title"], plain[0]["agentId"]) == ("", None)
        got = await client.call("conversations/get", {"conversationId": with_agent["id"]})
        assert got == with_agent

        # Pages of one, newest first, each conversation once.
        assert await list_ids(client) == [plain[1]["id"], plain[0]["id"], with_agent["id"]]
        assert await code_of(client, "conversations/list", {"cursor": "garbage"}) == -32602
        assert await code_of(client, "conversations/list", {"limit": 101}) == -32602
        assert await code_of(client, "conversations/list", {"limit": 0}) == -32602

        # Archive hides it from the list unless asked; restoring brings it back.
        ref = {"conversationId": plain[0]["id"]}
        archived = await client.call("conversations/archive", ref)
        assert archived["archived"] is True
        assert (await client.call("conversations/archive", ref))["archived"] is True  # idempotent
        assert await list_ids(client) == [plain[1]["id"], with_agent["id"]]
        assert await list_ids(client, includeArchived=True) == [
            plain[1]["id"],
            plain[0]["id"],
            with_agent["id"],
        ]
        assert (await client.call("conversations/get", ref))["archived"] is True
        restored = await client.call("conversations/archive", {**ref, "archived": False})
        assert restored["archived"] is False
        assert plain[0]["id"] in await list_ids(client)

        # Messages, oldest first.
        conv_ref = {"conversationId": with_agent["id"]}
        empty = await client.call("conversations/messages", conv_ref)
        assert empty == {"items": [], "nextCursor": None}
        store = server.app.services.store
        said: list[tuple[MessageRole, str]] = [
            ("user", "make the drums busier"),
            ("assistant", "done: ghost notes on the snare in bars 5-8"),
        ]
        for role, content in said:
            await store.messages.append(
                ACME, ConversationId(with_agent["id"]), role=role, content=content
            )
        page = await client.call("conversations/messages", conv_ref)
        assert [(m["role"], m["content"]) for m in page["items"]] == said
        assert page["nextCursor"] is None
        assert {m["conversationId"] for m in page["items"]} == {with_agent["id"]}
        first = await client.call("conversations/messages", {**conv_ref, "limit": 1})
        assert [m["content"] for m in first["items"]] == [said[0][1]]
        second = await client.call(
            "conversations/messages", {**conv_ref, "limit": 1, "cursor": first["nextCursor"]}
        )
        assert [m["content"] for m in second["items"]] == [said[1][1]]
        assert second["nextCursor"] is None
        bad_cursor = {**conv_ref, "cursor": "garbage"}
        assert await code_of(client, "conversations/messages", bad_cursor) == -32602

        # Deleting it deletes its messages; afterwards it is not found.
        assert await client.call("conversations/delete", conv_ref) == {"deleted": True}
        for method in (
            "conversations/get",
            "conversations/messages",
            "conversations/archive",
            "conversations/delete",
        ):
            error = await error_of(client, method, conv_ref)
            assert (error.wire_code, error.message) == (
                -32004,
                f"conversation not found: {with_agent['id']}",
            ), method
        assert with_agent["id"] not in await list_ids(client, includeArchived=True)


async def test_create_with_an_agent_the_caller_cannot_see(server: Running) -> None:
    async with await server.client() as alice:
        agent_id = (await alice.call("agents/create", {"name": "private"}))["id"]
    async with await server.client(sub="bob") as bob:
        error = await error_of(bob, "conversations/create", {"agentId": agent_id})
        assert (error.wire_code, error.message) == (-32004, f"agent not found: {agent_id}")
    async with await server.client(sub="eve", tenant="other") as eve:
        assert await code_of(eve, "conversations/create", {"agentId": agent_id}) == -32004
    async with await server.client() as alice:
        await alice.call("agents/delete", {"agentId": agent_id})
        assert await code_of(alice, "conversations/create", {"agentId": agent_id}) == -32004
        assert (await alice.call("conversations/list", {}))["items"] == []


async def test_another_tenant_or_user_gets_not_found(server: Running) -> None:
    async with await server.client() as alice:
        conv = await alice.call("conversations/create", {"title": "mine"})
    ref = {"conversationId": conv["id"]}
    outsiders = [
        await server.client(sub="eve", tenant="other"),
        # Even an admin of another tenant.
        await Client.connect(
            server.url, token=server.token("root", "other", scopes=["chat", "admin"])
        ),
        # Another user of the same tenant, without admin.
        await server.client(sub="bob"),
    ]
    for outsider in outsiders:
        async with outsider:
            for method in (
                "conversations/get",
                "conversations/archive",
                "conversations/delete",
                "conversations/messages",
            ):
                error = await error_of(outsider, method, ref)
                assert (error.wire_code, error.message) == (
                    -32004,
                    f"conversation not found: {conv['id']}",
                ), method
            assert (await outsider.call("conversations/list", {"includeArchived": True}))[
                "items"
            ] == []
    # A tenant admin sees the tenant's conversations, and may act on them.
    async with await Client.connect(
        server.url, token=server.token("root", "acme", scopes=["chat", "admin"])
    ) as admin:
        assert (await admin.call("conversations/get", ref)) == conv
        assert await list_ids(admin) == [conv["id"]]
        assert (await admin.call("conversations/messages", ref))["items"] == []
        assert (await admin.call("conversations/archive", ref))["archived"] is True
        assert await admin.call("conversations/delete", ref) == {"deleted": True}


async def test_missing_scope_is_forbidden(server: Running) -> None:
    async with await Client.connect(server.url, token=server.token(scopes=["agent"])) as client:
        for method, params in (
            ("conversations/create", {}),
            ("conversations/list", {}),
            ("conversations/get", {"conversationId": "c"}),
            ("conversations/messages", {"conversationId": "c"}),
        ):
            assert await code_of(client, method, params) == -32003, method
