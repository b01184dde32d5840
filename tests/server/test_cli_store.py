"""``yamabiko migrate`` and ``yamabiko rotate-keys`` as an operator runs them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
from cryptography.fernet import Fernet

from tests.server.test_cli import run
from tests.support import running_server
from yamabiko.schema.objects import TenantId, UserId
from yamabiko.store import open_store
from yamabiko.store.migrations import apply_migrations, load_migrations
from yamabiko.store.sql.database import connect

ALL = [m.name for m in load_migrations("sqlite")]


def test_migrate_an_empty_then_an_up_to_date_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'y.db'}"
    first = run("migrate", "--database-url", url, "--data-dir", str(tmp_path / "d"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == [w for name in ALL for w in ("applied", name)]
    again = run("migrate", "--database-url", url, "--data-dir", str(tmp_path / "d"))
    assert (again.returncode, again.stdout.strip()) == (0, "up to date")


async def test_migrate_an_old_postgres_schema(postgres_url: str, tmp_path: Path) -> None:
    schema = f"t_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{postgres_url}?search_path={schema}"
    try:
        db = await connect(url)
        try:
            assert await apply_migrations(db, target=1) == [ALL[0]]
        finally:
            await db.close()
        result = await asyncio.to_thread(
            run, "migrate", "--database-url", url, "--data-dir", str(tmp_path / "d")
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [w for name in ALL[1:] for w in ("applied", name)]
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def test_server_started_on_an_old_schema_migrates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = await connect(url)
    try:
        await apply_migrations(db, target=1)
    finally:
        await db.close()
    async with (
        running_server(tmp_path, database_url=url) as server,
        await server.client() as client,
    ):
        assert await client.call("ping") == {}
    assert (await asyncio.to_thread(run, "migrate", "--database-url", url)).stdout.strip() == (
        "up to date"
    )


async def test_rotate_keys_then_drop_the_old_key(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'y.db'}"
    store = await open_store(url, encryption_keys=[old])
    try:
        agent = await store.agents.create(TenantId("acme"), UserId("alice"), name="producer")
        await store.secrets.set(
            TenantId("acme"), agent.id, "OPENAI_API_KEY", "sk-plain-value", owner=None
        )
    finally:
        await store.close()
    env = {"YAMABIKO_ENCRYPTION_KEYS": f"{new},{old}", "YAMABIKO_DATABASE_URL": url}
    result = await asyncio.to_thread(run, "rotate-keys", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 secrets" in result.stdout
    assert old not in result.stdout + result.stderr
    store = await open_store(url, encryption_keys=[new])  # the old key is gone
    try:
        value = await store.secrets.get_value(TenantId("acme"), agent.id, "OPENAI_API_KEY")
        assert value == "sk-plain-value"
        events = await store.audit.list(None, action="keys.rotate")
        assert [e.outcome for e in events.items] == ["ok"]
    finally:
        await store.close()
    # Without the key that opens them, nothing changes and the command says so.
    other = Fernet.generate_key().decode()
    env["YAMABIKO_ENCRYPTION_KEYS"] = other
    result = await asyncio.to_thread(run, "rotate-keys", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
