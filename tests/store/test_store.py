"""Opening the store: URLs, keys, health, closing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.conftest import ACME, ALICE, KEY
from yamabiko.store import Store, open_store
from yamabiko.store.errors import StoreConfigError


async def test_ping_and_close_twice(store: Store) -> None:
    await store.ping()
    await store.close()
    await store.close()


async def test_in_memory_sqlite() -> None:
    store = await open_store("sqlite:///:memory:", encryption_keys=[KEY])
    try:
        agent = await store.agents.create(ACME, ALICE, name="bot")
        assert await store.agents.get(ACME, agent.id, owner=ALICE) == agent
        assert await store.models.get(ACME, "local") is not None
    finally:
        await store.close()


async def test_data_persists_across_reopening(database_url: str) -> None:
    store = await open_store(database_url, encryption_keys=[KEY])
    agent = await store.agents.create(ACME, ALICE, name="bot")
    await store.close()
    store = await open_store(database_url, encryption_keys=[KEY])
    try:
        assert await store.agents.get(ACME, agent.id, owner=None) == agent
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:hunter2@db/x", "unsupported database URL scheme 'mysql'"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///", "no path"),
    ],
)
async def test_a_bad_url_is_a_config_error(url: str, message: str) -> None:
    with pytest.raises(StoreConfigError, match=message) as caught:
        await open_store(url, encryption_keys=[KEY])
    assert "hunter2" not in str(caught.value)


async def test_a_missing_sqlite_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="folder does not exist"):
        await open_store(f"sqlite:///{tmp_path}/missing/y.db", encryption_keys=[KEY])


@pytest.mark.parametrize("keys", [[], ["not-a-key"], [KEY, "AAAA"]])
async def test_bad_keys_are_refused_before_connecting(tmp_path: Path, keys: list[str]) -> None:
    path = tmp_path / "never.db"
    with pytest.raises(StoreConfigError) as caught:
        await open_store(f"sqlite:///{path}", encryption_keys=keys)
    for key in keys:
        assert key not in str(caught.value)
    assert not path.exists()
