"""Agents: create, get, partial update, delete, list; owner scoping."""

from __future__ import annotations

from tests.store.conftest import ACME, ALICE, BOB
from yamabiko.schema.objects import AgentId, McpServerId
from yamabiko.store import Store


async def test_create_with_defaults(store: Store) -> None:
    agent = await store.agents.create(ACME, ALICE, name="Secretary")
    assert agent.tenant_id == ACME
    assert agent.owner == ALICE
    assert agent.name == "Secretary"
    assert (agent.personality, agent.system_prompt) == ("", "")
    assert (agent.model, agent.temperature) == (None, None)
    assert (agent.skills, agent.mcp_server_ids, agent.fallback_models) == ([], [], [])
    assert agent.created_at == agent.updated_at


async def test_create_with_everything_and_get(store: Store) -> None:
    agent = await store.agents.create(
        ACME,
        ALICE,
        name="Mixing engineer",
        personality="calm",
        system_prompt="You mix.",
        model="anthropic/claude-sonnet-4-5",
        temperature=0.3,
        skills=("eq", "compression"),
        mcp_server_ids=[McpServerId("s1")],
        fallback_models=["openai/gpt-4.1"],
    )
    assert agent.skills == ["eq", "compression"]
    assert agent.mcp_server_ids == ["s1"]
    assert agent.fallback_models == ["openai/gpt-4.1"]
    assert agent.temperature == 0.3
    assert await store.agents.get(ACME, agent.id, owner=ALICE) == agent
    assert await store.agents.get(ACME, agent.id, owner=None) == agent


async def test_another_owner_does_not_find_it(store: Store) -> None:
    agent = await store.agents.create(ACME, ALICE, name="mine")
    assert await store.agents.get(ACME, agent.id, owner=BOB) is None
    assert await store.agents.update(ACME, agent.id, owner=BOB, name="stolen") is None
    assert await store.agents.delete(ACME, agent.id, owner=BOB) is False
    assert (await store.agents.list(ACME, owner=BOB)).items == []
    assert await store.agents.get(ACME, agent.id, owner=ALICE) == agent


async def test_update_is_partial(store: Store) -> None:
    agent = await store.agents.create(
        ACME, ALICE, name="bot", model="openai/gpt-4.1", temperature=0.5, skills=["a"]
    )
    updated = await store.agents.update(
        ACME, agent.id, owner=ALICE, name="renamed", model=None, skills=("b", "c")
    )
    assert updated is not None
    assert updated.name == "renamed"
    assert updated.model is None
    assert updated.temperature == 0.5
    assert updated.skills == ["b", "c"]
    assert updated.created_at == agent.created_at
    assert updated.updated_at > agent.updated_at
    assert await store.agents.get(ACME, agent.id, owner=ALICE) == updated


async def test_update_and_delete_missing(store: Store) -> None:
    missing = AgentId("00000000-0000-7000-8000-000000000000")
    assert await store.agents.update(ACME, missing, owner=None, name="x") is None
    assert await store.agents.delete(ACME, missing, owner=None) is False


async def test_delete_takes_its_secrets(store: Store) -> None:
    agent = await store.agents.create(ACME, ALICE, name="bot")
    await store.secrets.set(ACME, agent.id, "KEY", "v", owner=ALICE)
    assert await store.agents.delete(ACME, agent.id, owner=ALICE) is True
    assert await store.agents.get(ACME, agent.id, owner=None) is None
    assert await store.secrets.get_value(ACME, agent.id, "KEY") is None
    # Recreating nothing under the same id is possible; the old secret is gone for good.
    assert await store.secrets.list(ACME, agent.id, owner=None) is None


async def test_list_by_owner_or_all(store: Store) -> None:
    a1 = await store.agents.create(ACME, ALICE, name="a1")
    b1 = await store.agents.create(ACME, BOB, name="b1")
    a2 = await store.agents.create(ACME, ALICE, name="a2")
    assert [a.id for a in (await store.agents.list(ACME, owner=ALICE)).items] == [a1.id, a2.id]
    assert [a.id for a in (await store.agents.list(ACME, owner=BOB)).items] == [b1.id]
    everyone = await store.agents.list(ACME, owner=None)
    assert [a.id for a in everyone.items] == [a1.id, b1.id, a2.id]
    assert everyone.next_cursor is None
