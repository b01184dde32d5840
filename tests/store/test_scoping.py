"""Tenant scoping: another tenant's objects are "not found" through every method.

Every object here belongs to tenant ACME; every call is made as tenant GLOBEX (with
``owner=None``, the admin's widest view, so that only the tenant stands in the way).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.store.conftest import ACME, ALICE, GLOBEX
from yamabiko.schema.objects import Agent, Conversation, McpServer, Message
from yamabiko.store import Store


@dataclass
class AcmeData:
    agent: Agent
    conversation: Conversation
    message: Message
    server: McpServer


@pytest.fixture
async def acme(store: Store) -> AcmeData:
    agent = await store.agents.create(ACME, ALICE, name="bot")
    await store.secrets.set(ACME, agent.id, "KEY", "acme-secret", owner=ALICE)
    conversation = await store.conversations.create(ACME, ALICE, agent_id=agent.id)
    message = await store.messages.append(ACME, conversation.id, role="user", content="hi")
    assert message is not None
    server = await store.mcp_servers.add(ACME, name="fs", transport="stdio", command="fs")
    return AcmeData(agent, conversation, message, server)


async def test_agents(store: Store, acme: AcmeData) -> None:
    agent_id = acme.agent.id
    assert await store.agents.get(GLOBEX, agent_id, owner=None) is None
    assert await store.agents.update(GLOBEX, agent_id, owner=None, name="pwned") is None
    assert await store.agents.delete(GLOBEX, agent_id, owner=None) is False
    assert (await store.agents.list(GLOBEX, owner=None)).items == []
    assert (await store.agents.list(GLOBEX, owner=ALICE)).items == []
    assert await store.agents.get(ACME, agent_id, owner=None) == acme.agent


async def test_secrets(store: Store, acme: AcmeData) -> None:
    agent_id = acme.agent.id
    assert await store.secrets.set(GLOBEX, agent_id, "KEY", "evil", owner=None) is None
    assert await store.secrets.list(GLOBEX, agent_id, owner=None) is None
    assert await store.secrets.delete(GLOBEX, agent_id, "KEY", owner=None) is False
    assert await store.secrets.get_value(GLOBEX, agent_id, "KEY") is None
    assert await store.secrets.get_value(ACME, agent_id, "KEY") == "acme-secret"


async def test_conversations(store: Store, acme: AcmeData) -> None:
    conversation_id = acme.conversation.id
    assert await store.conversations.get(GLOBEX, conversation_id, owner=None) is None
    assert await store.conversations.archive(GLOBEX, conversation_id, owner=None) is None
    assert await store.conversations.delete(GLOBEX, conversation_id, owner=None) is False
    page = await store.conversations.list(GLOBEX, owner=None, include_archived=True)
    assert page.items == []
    still = await store.conversations.get(ACME, conversation_id, owner=None)
    assert still is not None
    assert still.archived is False


async def test_messages(store: Store, acme: AcmeData) -> None:
    conversation_id = acme.conversation.id
    assert await store.messages.list(GLOBEX, conversation_id, owner=None) is None
    assert await store.messages.append(GLOBEX, conversation_id, role="user", content="x") is None
    assert await store.messages.update(GLOBEX, acme.message.id, content="pwned") is None
    page = await store.messages.list(ACME, conversation_id, owner=None)
    assert page is not None
    assert page.items == [acme.message]


async def test_mcp_servers(store: Store, acme: AcmeData) -> None:
    assert await store.mcp_servers.get(GLOBEX, acme.server.id) is None
    assert await store.mcp_servers.remove(GLOBEX, acme.server.id) is False
    assert (await store.mcp_servers.list(GLOBEX)).items == []
    assert await store.mcp_servers.get(ACME, acme.server.id) == acme.server
    # Names are unique per tenant, not globally.
    await store.mcp_servers.add(GLOBEX, name="fs", transport="stdio", command="fs")


async def test_usage_audit_and_revocations(store: Store, acme: AcmeData) -> None:
    await store.audit.record(ACME, subject=ALICE, action="x", outcome="ok")
    await store.revocations.revoke(ACME, "jti", 4e9)
    assert (await store.audit.list(GLOBEX)).items == []
    assert await store.revocations.is_revoked(GLOBEX, "jti") is False
