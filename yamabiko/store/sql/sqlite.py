"""The embedded backend: one SQLite connection through aiosqlite.

One connection serves the whole process, so statements are serialized by a lock and a
transaction holds it to its end (``BEGIN IMMEDIATE``: the write lock is taken at the
start, so two processes sharing the file wait for each other instead of failing midway).
The file is in WAL mode, with foreign keys on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import aiosqlite
import msgspec

from yamabiko.store.errors import StoreConfigError
from yamabiko.store.sql.database import Dialect, Executor, Row

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Fixed width, so that text order is time order in comparisons and ORDER BY."""

BUSY_TIMEOUT_MS = 5_000
_WAL_ATTEMPTS = 20
_WAL_RETRY_S = 0.025
"""Backoff step: 20 attempts wait at most ~5 s in all, like busy_timeout."""

# aiosqlite logs every call with its arguments at DEBUG, and our arguments are prompts and
# ciphertexts, which must never reach a log line whatever level the root logger is at.
# An operator who really wants them can lower this logger's level again.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

SQLITE = Dialect(
    name="sqlite",
    json_as_text=True,
    day=lambda column: f"substr({column}, 1, 10)",
    # Column and placeholder names are ours, never input.
    json_array_has=lambda column, param: (
        f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {param})"  # noqa: S608
    ),
    schema_migrations_ddl=(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);"
    ),
    # BEGIN IMMEDIATE already keeps every other writer out.
    migration_lock=None,
)

_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    # ``?NNN`` is SQLite's numbered placeholder: ``$1`` becomes ``?1``, same meaning.
    return _PLACEHOLDER.sub(r"?\1", sql)


def format_timestamp(value: datetime) -> str:
    """A timestamp as SQLite stores it: UTC, microseconds, fixed width."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the store takes UTC-aware datetimes only")
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def _adapt(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, dict | list | tuple | msgspec.Struct):
        return msgspec.json.encode(value).decode("utf-8")
    return value


def _statements(script: str) -> list[str]:
    """A script's statements, split where SQLite itself sees each one end."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    rest = [
        line for line in buffer.splitlines() if line.strip() and not line.strip().startswith("--")
    ]
    if rest:
        raise ValueError("script ends inside a statement (missing ';'?)")
    return statements


async def _use_wal(conn: aiosqlite.Connection) -> None:
    """Switches the file to WAL mode (a no-op when it already is).

    The switch needs a lock that SQLite refuses at once, without waiting out
    busy_timeout, while another connection is writing: two processes opening a fresh
    file together hit it. Retried a bounded number of times, then raised.
    """
    for attempt in range(_WAL_ATTEMPTS):
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            await asyncio.sleep(_WAL_RETRY_S * (attempt + 1))


def _rowcount(conn: sqlite3.Connection, sql: str, args: list[object]) -> int:
    """Run one statement (on the connection's thread); the number of rows it changed."""
    cursor = conn.execute(sql, args)
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()


class _Connection:
    """The statements themselves, with no locking: used under the database's lock."""

    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        rows = await self._conn.execute_fetchall(_translate(sql), [_adapt(a) for a in args])
        return [dict(row) for row in rows]

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: object) -> int:
        # One trip to the connection's thread, where ``conn.execute`` and closing its
        # cursor would take two: a transaction is a handful of statements, each a
        # thread hop that waits for the event loop to pick its result up. This uses
        # aiosqlite's ``_execute`` (queue a function on its thread), hence the pin.
        changed = await self._conn._execute(  # type: ignore[no-untyped-call]
            _rowcount, self._conn._conn, _translate(sql), [_adapt(a) for a in args]
        )
        return int(changed)

    async def script(self, sql: str) -> None:
        # Not executescript: it commits any open transaction first, and a migration
        # must run inside one.
        for statement in _statements(sql):
            await self._conn.execute(statement)


class SqliteDatabase:
    """A :class:`~.database.Database` over one SQLite file (or ``:memory:``)."""

    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._raw = _Connection(conn)
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        if not path:
            raise StoreConfigError("sqlite URL has no path: use sqlite:///PATH")
        if path != ":memory:" and not Path(path).parent.is_dir():
            raise StoreConfigError(f"sqlite database folder does not exist: {Path(path).parent}")
        # isolation_level=None: the driver never opens transactions behind our back;
        # transaction() does it explicitly.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA foreign_keys = ON")
            if path != ":memory:":
                await _use_wal(conn)
                await conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        async with self._lock:
            return await self._raw.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        async with self._lock:
            return await self._raw.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: object) -> int:
        async with self._lock:
            return await self._raw.execute(sql, *args)

    async def script(self, sql: str) -> None:
        async with self._lock:
            await self._raw.script(sql)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._lock:
            await self._raw.execute("BEGIN IMMEDIATE")
            try:
                yield self._raw
            except BaseException:
                # SQLite has already rolled back after some errors (a full disk, say).
                if self._conn.in_transaction:
                    await self._raw.execute("ROLLBACK")
                raise
            try:
                await self._raw.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (say SQLITE_BUSY) leaves the transaction open.
                if self._conn.in_transaction:
                    await self._raw.execute("ROLLBACK")
                raise

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await self._conn.close()
