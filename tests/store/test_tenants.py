"""Tenants: create, get, update, delete (with their data), list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.store.conftest import ACME, ALICE, GLOBEX
from yamabiko.protocol.errors import InvalidParams
from yamabiko.schema.objects import RateLimits, TenantId
from yamabiko.store import Store
from yamabiko.store.errors import AlreadyExists


async def test_create_with_a_chosen_id_and_get(store: Store) -> None:
    tenant = await store.tenants.create(
        tenant_id=ACME,
        name="Acme",
        system_prompt="Be terse.",
        default_model="openai/gpt-4.1-mini",
        monthly_budget_usd=25.5,
        rate_limits=RateLimits(requests_per_second=5.0, burst=20),
    )
    assert tenant.id == ACME
    assert tenant.created_at == tenant.updated_at
    assert tenant.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - tenant.created_at).total_seconds()) < 60
    assert await store.tenants.get(ACME) == tenant


async def test_create_generates_an_id_and_defaults(store: Store) -> None:
    tenant = await store.tenants.create(name="Initech")
    assert tenant.id
    assert tenant.system_prompt is None
    assert tenant.default_model is None
    assert tenant.monthly_budget_usd is None
    assert tenant.rate_limits is None
    assert await store.tenants.get(tenant.id) == tenant


async def test_create_refuses_a_taken_or_empty_id(store: Store) -> None:
    await store.tenants.create(tenant_id=ACME, name="Acme")
    with pytest.raises(AlreadyExists):
        await store.tenants.create(tenant_id=ACME, name="Other")
    with pytest.raises(InvalidParams):
        await store.tenants.create(tenant_id=TenantId(""), name="Nobody")
    tenant = await store.tenants.get(ACME)
    assert tenant is not None
    assert tenant.name == "Acme"


async def test_get_missing_is_none(store: Store) -> None:
    assert await store.tenants.get(TenantId("nope")) is None


async def test_update_changes_only_given_fields_and_none_clears(store: Store) -> None:
    created = await store.tenants.create(
        tenant_id=ACME, name="Acme", system_prompt="Be terse.", monthly_budget_usd=10.0
    )
    updated = await store.tenants.update(
        ACME,
        name="Acme Corp",
        monthly_budget_usd=None,
        rate_limits=RateLimits(requests_per_second=1.5, burst=3),
    )
    assert updated is not None
    assert updated.name == "Acme Corp"
    assert updated.system_prompt == "Be terse."
    assert updated.monthly_budget_usd is None
    assert updated.rate_limits == RateLimits(requests_per_second=1.5, burst=3)
    assert updated.created_at == created.created_at
    assert updated.updated_at > created.updated_at
    assert await store.tenants.get(ACME) == updated


async def test_update_missing_is_none(store: Store) -> None:
    assert await store.tenants.update(TenantId("nope"), name="x") is None


async def test_delete_takes_the_tenants_data_and_keeps_history(store: Store) -> None:
    await store.tenants.create(tenant_id=ACME, name="Acme")
    await store.tenants.create(tenant_id=GLOBEX, name="Globex")
    for tenant in (ACME, GLOBEX):
        agent = await store.agents.create(tenant, ALICE, name="bot")
        await store.secrets.set(tenant, agent.id, "KEY", "value", owner=ALICE)
        conversation = await store.conversations.create(tenant, ALICE)
        await store.messages.append(tenant, conversation.id, role="user", content="hi")
        await store.mcp_servers.add(tenant, name="fs", transport="stdio", command="fs")
        await store.usage.record(
            tenant, ALICE, "local/default", input_tokens=1, output_tokens=1, cost_usd=0.0
        )
        await store.audit.record(tenant, subject=ALICE, action="agent.create", outcome="ok")
        await store.revocations.revoke(tenant, "jti-1", 4e9)

    assert await store.tenants.delete(ACME) is True

    assert await store.tenants.get(ACME) is None
    assert (await store.agents.list(ACME, owner=None)).items == []
    assert (await store.conversations.list(ACME, owner=None)).items == []
    assert (await store.mcp_servers.list(ACME)).items == []
    assert await store.revocations.is_revoked(ACME, "jti-1") is False
    # History stays.
    assert len((await store.audit.list(ACME)).items) == 1
    report = await store.usage.report(
        ACME,
        start=datetime(2000, 1, 1, tzinfo=UTC),
        end=datetime(2100, 1, 1, tzinfo=UTC),
        group_by="model",
    )
    assert [row.requests for row in report] == [1]
    # The other tenant is untouched.
    assert len((await store.agents.list(GLOBEX, owner=None)).items) == 1
    assert len((await store.conversations.list(GLOBEX, owner=None)).items) == 1
    assert await store.revocations.is_revoked(GLOBEX, "jti-1") is True


async def test_delete_missing_is_false_and_touches_nothing(store: Store) -> None:
    await store.agents.create(ACME, ALICE, name="bot")  # a tenant with data but no row
    assert await store.tenants.delete(ACME) is False
    assert len((await store.agents.list(ACME, owner=None)).items) == 1


async def test_list_oldest_first(store: Store) -> None:
    ids = [(await store.tenants.create(name=f"t{i}")).id for i in range(3)]
    first = await store.tenants.list(limit=2)
    assert [t.id for t in first.items] == ids[:2]
    assert first.next_cursor is not None
    second = await store.tenants.list(limit=2, cursor=first.next_cursor)
    assert [t.id for t in second.items] == ids[2:]
    assert second.next_cursor is None
