"""A conversation's lifecycle over a real socket and a real SQLite store."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Running
from yamabiko.client import Client, RemoteError
from yamabiko.schema.objects import ConversationId, TenantId


async def code_of(client: Client, method: str, params: Any) -> int:
    with pytest.raises(RemoteError) as info:
        await client.call(method, params)
    return info.value.wire_code


async def test_conversation_lifecycle(server: Running) -> None:
    async with await server.client() as client:
        agent = await client.call("agents/create", {"name": "helper"})
        with_agent = await client.call(
            "conversations/create", {"title": "Chorus ideas", "agentId": agent["id"]}
        )
        assert (with_agent["title"], with_agent["agentId"]) == ("Chorus ideas", agent["id"])
        plain = [await client.call("conversations/create", {}) for _ in range(2)]
        # Pages of one, newest first, each conversation once.
        seen, cursor = [], None
        while True:
            page = await client.call("conversations/list", {"limit": 1, "cursor": cursor})
            seen += [c["id"] for c in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == [plain[1]["id"], plain[0]["id"], with_agent["id"]]
        assert await code_of(client, "conversations/list", {"cursor": "garbage"}) == -32602
        assert await code_of(client, "conversations/list", {"limit": 101}) == -32602
        # Archive hides it from the list unless asked; restoring brings it back.
        archived = await client.call("conversations/archive", {"conversationId": plain[0]["id"]})
        assert archived["archived"] is True
        ids = [c["id"] for c in (await client.call("conversations/list", {}))["items"]]
        assert plain[0]["id"] not in ids
        ids = [
            c["id"]
            for c in (await client.call("conversations/list", {"includeArchived": True}))["items"]
        ]
        assert plain[0]["id"] in ids
        # Messages, oldest first.
        empty = await client.call("conversations/messages", {"conversationId": with_agent["id"]})
        assert empty == {"items": [], "nextCursor": None}
        store = server.app.services.store
        for role, content in (("user", "make the drums busier"), ("assistant", "done")):
            await store.messages.append(
                TenantId("acme"), ConversationId(with_agent["id"]), role=role, content=content
            )  # type: ignore[arg-type]
        page = await client.call("conversations/messages", {"conversationId": with_agent["id"]})
        assert [(m["role"], m["content"]) for m in page["items"]] == [
            ("user", "make the drums busier"),
            ("assistant", "done"),
        ]
        assert await client.call("conversations/delete", {"conversationId": with_agent["id"]}) == {
            "deleted": True
        }
        assert (
            await code_of(client, "conversations/get", {"conversationId": with_agent["id"]})
            == -32004
        )
        assert (
            await code_of(client, "conversations/messages", {"conversationId": with_agent["id"]})
            == -32004
        )


async def test_another_tenant_or_user_gets_not_found(server: Running) -> None:
    async with await server.client() as alice:
        agent = await alice.call("agents/create", {"name": "private"})
        conv = await alice.call("conversations/create", {"title": "mine"})
    ref = {"conversationId": conv["id"]}
    async with await server.client(sub="eve", tenant="other") as eve:
        for method in (
            "conversations/get",
            "conversations/archive",
            "conversations/delete",
            "conversations/messages",
        ):
            assert await code_of(eve, method, ref) == -32004, method
        # Nor can a conversation be tied to another tenant's agent.
        assert await code_of(eve, "conversations/create", {"agentId": agent["id"]}) == -32004
    async with await server.client(sub="bob") as bob:
        assert await code_of(bob, "conversations/get", ref) == -32004
    async with await Client.connect(
        server.url, token=server.token("root", "acme", scopes=["chat", "admin"])
    ) as admin:
        assert (await admin.call("conversations/get", ref))["owner"] == "alice"
