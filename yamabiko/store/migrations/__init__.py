"""Versioned schema migrations, one folder of SQL files per dialect.

A migration is a file ``NNNN_name.sql`` in ``sqlite/`` and ``postgres/``; versions are
applied in ascending order and recorded in ``schema_migrations(version, name,
applied_at)``. Guarantees:

- all pending migrations are applied in one transaction, together with their rows in
  ``schema_migrations``: a failure leaves the schema as it was;
- running again is a no-op (nothing is pending), so starting a server and running
  ``yamabiko migrate`` are both safe at any time;
- two processes migrating at once do not race: SQLite's ``BEGIN IMMEDIATE`` and a
  PostgreSQL advisory lock (per schema) make the second wait, then find nothing to do;
- a migration, once released, is never edited: changes go in a new file.

The files ship as package data (``store/migrations/*/*.sql``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from yamabiko.store.ids import utc_now
from yamabiko.store.sql.database import Database, connect

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    """The file name without ``.sql``: ``0001_initial``."""
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The dialect's migrations, in version order. Raises ValueError for a misnamed file
    or a version used twice (a packaging mistake, caught by the tests)."""
    folder = resources.files(__package__).joinpath(dialect)
    migrations: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {dialect}/{entry.name} is not named NNNN_name.sql")
        version = int(match[1])
        if version in migrations:
            raise ValueError(f"two {dialect} migrations have version {version}")
        migrations[version] = Migration(version, entry.name[:-4], entry.read_text("utf-8"))
    return [migrations[v] for v in sorted(migrations)]


async def apply_migrations(db: Database, *, target: int | None = None) -> list[str]:
    """Applies the pending migrations (up to version ``target``, all when None) and
    returns their names in order; empty when the schema is up to date."""
    pending = [m for m in load_migrations(db.dialect.name) if target is None or m.version <= target]
    applied: list[str] = []
    async with db.transaction() as tx:
        if tx.dialect.migration_lock:
            await tx.execute(tx.dialect.migration_lock)
        await tx.script(tx.dialect.schema_migrations_ddl)
        done = {row["version"] for row in await tx.fetch("SELECT version FROM schema_migrations")}
        for migration in pending:
            if migration.version in done:
                continue
            await tx.script(migration.sql)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                utc_now(),
            )
            applied.append(migration.name)
    return applied


async def migrate(database_url: str) -> list[str]:
    """Brings the database a URL names up to date (``yamabiko migrate``); the names of
    the migrations applied, empty when it already was."""
    db = await connect(database_url)
    try:
        return await apply_migrations(db)
    finally:
        await db.close()
