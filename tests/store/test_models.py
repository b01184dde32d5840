"""The model catalogue: the seeded global entries, tenants' own, lookup by alias."""

from __future__ import annotations

import pytest

from tests.store.conftest import ACME, GLOBEX
from yamabiko.schema.objects import ModelId
from yamabiko.store import Store
from yamabiko.store.errors import AlreadyExists

SEEDED = {
    "openai/gpt-4.1-mini",
    "openai/gpt-4.1",
    "anthropic/claude-sonnet-4-5",
    "anthropic/claude-haiku-4-5",
    "gemini/gemini-2.5-flash",
    "gemini/gemini-2.5-pro",
    "local/default",
}


async def _register(store: Store, tenant: str | None, model_id: str, **overrides: object) -> None:
    fields: dict[str, object] = {
        "provider": "openai",
        "provider_model": model_id.partition("/")[2],
        "input_price_per_mtok": 1.0,
        "output_price_per_mtok": 2.0,
        "context_window": 1000,
    }
    fields.update(overrides)
    await store.models.register(tenant, ModelId(model_id), **fields)  # type: ignore[arg-type]


async def test_the_default_catalogue_is_seeded(store: Store) -> None:
    page = await store.models.list(None, limit=100)
    assert {m.id for m in page.items} == SEEDED
    assert all(m.tenant_id is None for m in page.items)
    local = await store.models.get(ACME, "local/default")
    assert local is not None
    assert (local.input_price_per_mtok, local.output_price_per_mtok) == (0.0, 0.0)
    for entry in page.items:
        assert entry.context_window > 0
        assert entry.provider == entry.id.partition("/")[0]
        if entry.provider != "local":
            assert 0 < entry.input_price_per_mtok < entry.output_price_per_mtok


async def test_get_by_id_or_alias(store: Store) -> None:
    by_id = await store.models.get(ACME, "anthropic/claude-sonnet-4-5")
    by_alias = await store.models.get(ACME, "sonnet")
    assert by_id is not None
    assert by_alias == by_id
    assert by_id.provider_model == "claude-sonnet-4-5"
    assert await store.models.get(ACME, "no-such-model") is None


async def test_a_tenants_own_entry_overrides_the_global_one(store: Store) -> None:
    await _register(store, ACME, "openai/gpt-4.1", aliases=["house"], input_price_per_mtok=0.5)
    own = await store.models.get(ACME, "openai/gpt-4.1")
    assert own is not None
    assert (own.tenant_id, own.input_price_per_mtok) == (ACME, 0.5)
    assert await store.models.get(ACME, "house") == own
    # The override hides the global entry, aliases included.
    assert await store.models.get(ACME, "gpt-4.1") is None
    # Other tenants still see the global entry, and not the override's alias.
    theirs = await store.models.get(GLOBEX, "gpt-4.1")
    assert theirs is not None
    assert theirs.tenant_id is None
    assert await store.models.get(GLOBEX, "house") is None

    listed = await store.models.list(ACME, limit=100)
    ids = [(m.id, m.tenant_id) for m in listed.items]
    assert ("openai/gpt-4.1", ACME) in ids
    assert ("openai/gpt-4.1", None) not in ids
    assert len(ids) == len(SEEDED)
    assert len((await store.models.list(GLOBEX, limit=100)).items) == len(SEEDED)


async def test_an_id_beats_an_alias(store: Store) -> None:
    await _register(store, ACME, "custom/sonnet")
    await _register(store, ACME, "custom/other", aliases=["custom/sonnet"])
    found = await store.models.get(ACME, "custom/sonnet")
    assert found is not None
    assert found.id == "custom/sonnet"


async def test_register_refuses_a_taken_id_in_the_same_scope(store: Store) -> None:
    with pytest.raises(AlreadyExists):
        await _register(store, None, "local/default")
    await _register(store, ACME, "x/y")
    with pytest.raises(AlreadyExists):
        await _register(store, ACME, "x/y")
    await _register(store, GLOBEX, "x/y")  # another scope: fine


async def test_list_pages_through_the_catalogue(store: Store) -> None:
    await _register(store, ACME, "z/own")
    first = await store.models.list(ACME, limit=4)
    second = await store.models.list(ACME, limit=4, cursor=first.next_cursor)
    assert second.next_cursor is None
    ids = [m.id for m in first.items + second.items]
    assert set(ids) == SEEDED | {"z/own"}
    assert ids[-1] == "z/own"  # registered last, listed last


async def test_update_in_its_scope_only(store: Store) -> None:
    before = await store.models.get(ACME, "local/default")
    assert before is not None
    # A tenant cannot change the global entry through its own scope.
    assert await store.models.update(ACME, ModelId("local/default"), context_window=1) is None
    updated = await store.models.update(
        None, ModelId("local/default"), context_window=32768, aliases=("local", "offline")
    )
    assert updated is not None
    assert updated.context_window == 32768
    assert updated.aliases == ["local", "offline"]
    assert updated.provider == before.provider
    assert updated.updated_at > before.updated_at
    assert await store.models.get(GLOBEX, "offline") == updated
    assert await store.models.update(None, ModelId("nope/nope"), context_window=1) is None


async def test_delete_in_its_scope_only(store: Store) -> None:
    await _register(store, ACME, "x/y")
    assert await store.models.delete(GLOBEX, ModelId("x/y")) is False
    assert await store.models.delete(ACME, ModelId("local/default")) is False
    assert await store.models.delete(ACME, ModelId("x/y")) is True
    assert await store.models.get(ACME, "x/y") is None
    assert await store.models.delete(None, ModelId("local/default")) is True
    assert await store.models.get(ACME, "local") is None
