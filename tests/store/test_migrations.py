"""Migrations: an empty database, an up-to-date one, an old one, two at once."""

from __future__ import annotations

import asyncio

import pytest

from tests.store.conftest import ACME, KEY
from yamabiko.store import migrate, open_store
from yamabiko.store.migrations import apply_migrations, load_migrations
from yamabiko.store.sql.database import connect

ALL = [m.name for m in load_migrations("sqlite")]


def test_both_dialects_have_the_same_migrations() -> None:
    sqlite, postgres = load_migrations("sqlite"), load_migrations("postgres")
    assert [(m.version, m.name) for m in sqlite] == [(m.version, m.name) for m in postgres]
    assert [m.version for m in sqlite] == list(range(1, len(sqlite) + 1))
    assert len(sqlite) >= 2


async def _applied(url: str) -> list[tuple[int, str]]:
    db = await connect(url)
    try:
        rows = await db.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        return [(row["version"], row["name"]) for row in rows]
    finally:
        await db.close()


async def test_an_empty_database_gets_every_migration(database_url: str) -> None:
    assert await migrate(database_url) == ALL
    assert [name for _, name in await _applied(database_url)] == ALL


async def test_an_up_to_date_database_is_left_alone(database_url: str) -> None:
    await migrate(database_url)
    assert await migrate(database_url) == []
    store = await open_store(database_url, encryption_keys=[KEY])  # migrates too: no-op
    await store.close()
    assert [name for _, name in await _applied(database_url)] == ALL


async def test_a_server_started_on_an_old_schema_migrates_it(database_url: str) -> None:
    db = await connect(database_url)
    try:
        assert await apply_migrations(db, target=1) == ["0001_initial"]
        # Data written under the old schema survives the upgrade.
        await db.execute(
            "INSERT INTO revoked_tokens (tenant_id, jti, expires_at) VALUES ($1, $2, $3)",
            ACME,
            "kept",
            4e9,
        )
    finally:
        await db.close()

    store = await open_store(database_url, encryption_keys=[KEY])
    try:
        assert await store.models.get(ACME, "local/default") is not None  # seeded by 0002
        assert await store.revocations.is_revoked(ACME, "kept") is True
    finally:
        await store.close()
    assert [name for _, name in await _applied(database_url)] == ALL


async def test_two_processes_migrating_at_once_apply_each_migration_once(
    database_url: str,
) -> None:
    results = await asyncio.gather(migrate(database_url), migrate(database_url))
    assert sorted(results, key=len) == [[], ALL]
    assert [name for _, name in await _applied(database_url)] == ALL


async def test_open_store_without_migrating(database_url: str) -> None:
    store = await open_store(database_url, encryption_keys=[KEY], migrate=False)
    await store.close()
    assert await migrate(database_url) == ALL


async def test_a_failing_migration_changes_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yamabiko.store import migrations

    real = migrations.load_migrations

    def broken(dialect: str) -> list[migrations.Migration]:
        good = real(dialect)
        return [*good, migrations.Migration(99, "0099_broken", "CREATE TABLE broken (;")]

    monkeypatch.setattr(migrations, "load_migrations", broken)
    with pytest.raises(Exception):  # the driver's syntax error
        await migrate(database_url)
    monkeypatch.undo()
    # Nothing of the run stayed: not 0001, not 0002.
    assert await migrate(database_url) == ALL
