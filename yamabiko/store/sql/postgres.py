"""The shared backend: PostgreSQL through an asyncpg pool.

JSON columns are ``jsonb``, encoded and decoded with msgspec by a codec every pooled
connection registers when it opens. Every statement is bounded by the pool's command
timeout, so a stuck database fails a request instead of hanging it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec

from yamabiko.store.sql.database import Dialect, Executor, Row

COMMAND_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10

POSTGRES = Dialect(
    name="postgres",
    json_as_text=False,
    day=lambda column: f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    json_array_has=lambda column, param: f"{column} ? {param}",
    schema_migrations_ddl=(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL);"
    ),
    # Two nodes starting at once: the second waits here, then finds nothing to do. Keyed
    # by schema, so that databases in different schemas migrate independently.
    migration_lock=(
        "SELECT pg_advisory_xact_lock("
        "hashtext('yamabiko.migrate:' || coalesce(current_schema(), '')))"
    ),
)


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode("utf-8")


def _adapt(value: object) -> object:
    # Structs are stored as their JSON objects; everything else asyncpg adapts itself.
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


def _rowcount(status: str) -> int:
    # asyncpg answers a command with its tag: "UPDATE 3", "INSERT 0 1", "DELETE 0".
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode
        )


class _Statements:
    """Statements on the pool (each on whichever connection is free) or on one
    connection (inside a transaction)."""

    dialect = POSTGRES

    def __init__(self, target: asyncpg.Pool[Any] | asyncpg.pool.PoolConnectionProxy[Any]) -> None:
        self._target = target

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        rows = await self._target.fetch(sql, *[_adapt(a) for a in args])
        return [dict(row) for row in rows]

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        row = await self._target.fetchrow(sql, *[_adapt(a) for a in args])
        return None if row is None else dict(row)

    async def execute(self, sql: str, *args: object) -> int:
        return _rowcount(await self._target.execute(sql, *[_adapt(a) for a in args]))

    async def script(self, sql: str) -> None:
        # No arguments: asyncpg uses the simple query protocol, which runs many statements.
        await self._target.execute(sql)


class PostgresDatabase(_Statements):
    """A :class:`~.database.Database` over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        super().__init__(pool)
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        pool = await asyncpg.create_pool(
            url,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=COMMAND_TIMEOUT_S,
            init=_init_connection,
        )
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _Statements(conn)

    def fetch_now(self, sql: str, *args: object) -> list[Row] | None:
        return None  # every read is a round trip to the server

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        # Pool.close is idempotent; it waits for connections in use to be released.
        await self._pool.close()
