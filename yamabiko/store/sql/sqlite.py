"""The embedded backend: one SQLite connection on a thread of its own
(``sqlite_thread.py``).

One connection serves the whole process, so statements are serialized by a lock and a
transaction holds it to its end (``BEGIN IMMEDIATE``: the write lock is taken at the
start, so two processes sharing the file wait for each other instead of failing midway).
The file is in WAL mode, with foreign keys on.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import msgspec

from yamabiko.store.errors import StoreConfigError
from yamabiko.store.sql.database import Dialect, Executor, Row
from yamabiko.store.sql.sqlite_thread import SqliteThread

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Fixed width, so that text order is time order in comparisons and ORDER BY."""

BUSY_TIMEOUT_MS = 5_000
_WAL_ATTEMPTS = 20
_WAL_RETRY_S = 0.025
"""Backoff step: 20 attempts wait at most ~5 s in all, like busy_timeout."""


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


def _connect(path: str) -> sqlite3.Connection:
    """Open the file as the store uses it (runs on the store's thread)."""
    # isolation_level=None: the driver never opens transactions behind our back;
    # transaction() does it explicitly. check_same_thread=False: the connection is
    # made here and used only here, but ``close`` may come from another thread.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        if path != ":memory:":
            _use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switches the file to WAL mode (a no-op when it already is).

    The switch needs a lock that SQLite refuses at once, without waiting out
    busy_timeout, while another connection is writing: two processes opening a fresh
    file together hit it. Retried a bounded number of times (on the store's thread,
    so waiting there holds nothing else up), then raised.
    """
    for attempt in range(_WAL_ATTEMPTS):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(_WAL_RETRY_S * (attempt + 1))


def _rows(sql: str, args: list[object]) -> Callable[[sqlite3.Connection], list[Row]]:
    def job(conn: sqlite3.Connection) -> list[Row]:
        cursor = conn.execute(sql, args)
        try:
            return [dict(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    return job


def _rowcount(sql: str, args: list[object]) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        cursor = conn.execute(sql, args)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    return job


def _script(statements: list[str]) -> Callable[[sqlite3.Connection], None]:
    # Not executescript: it commits any open transaction first, and a migration must
    # run inside one.
    def job(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement).close()

    return job


class _Connection:
    """The statements themselves, with no locking: used under the database's lock.
    Each statement is one trip to the store's thread, its rows made into dicts there."""

    dialect = SQLITE

    def __init__(self, thread: SqliteThread) -> None:
        self._thread = thread

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return await self._thread.run(_rows(_translate(sql), [_adapt(a) for a in args]))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: object) -> int:
        return await self._thread.run(_rowcount(_translate(sql), [_adapt(a) for a in args]))

    async def script(self, sql: str) -> None:
        await self._thread.run(_script(_statements(sql)))


class SqliteDatabase:
    """A :class:`~.database.Database` over one SQLite file (or ``:memory:``)."""

    dialect = SQLITE

    def __init__(self, thread: SqliteThread, path: str) -> None:
        self._thread = thread
        self._raw = _Connection(thread)
        self._lock = asyncio.Lock()
        self._closed = False
        self._path = path
        self._reader: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        if not path:
            raise StoreConfigError("sqlite URL has no path: use sqlite:///PATH")
        if path != ":memory:" and not Path(path).parent.is_dir():
            raise StoreConfigError(f"sqlite database folder does not exist: {Path(path).parent}")
        return cls(await SqliteThread.start(functools.partial(_connect, path)), path)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        async with self._lock:
            return await self._raw.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        async with self._lock:
            return await self._raw.fetchrow(sql, *args)

    def fetch_now(self, sql: str, *args: object) -> list[Row] | None:
        """Rows read at once, on the caller's thread, or None when that cannot be done
        without waiting (then ``fetch``).

        For the few point reads on a hot path (the revocation check of every
        handshake): a lookup by key in a small table takes microseconds, where a trip
        to the store's thread costs about a tenth of a millisecond of CPU. It reads
        through a read-only connection of its own in WAL mode, where readers never
        wait for writers; it sees every committed write, as the store's thread does.
        An in-memory database has no second connection; a busy file (recovery) or an
        error gives None.
        """
        if self._closed or self._path == ":memory:":
            return None
        reader = self._reader
        try:
            if reader is None:
                uri = f"{Path(self._path).absolute().as_uri()}?mode=ro"
                reader = sqlite3.connect(uri, uri=True, isolation_level=None)
                reader.row_factory = sqlite3.Row
                reader.execute("PRAGMA busy_timeout = 0")
                self._reader = reader
            cursor = reader.execute(_translate(sql), [_adapt(a) for a in args])
            try:
                return [dict(row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        except sqlite3.Error:
            return None

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
                if self._thread.in_transaction:
                    await self._raw.execute("ROLLBACK")
                raise
            try:
                await self._raw.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (say SQLITE_BUSY) leaves the transaction open.
                if self._thread.in_transaction:
                    await self._raw.execute("ROLLBACK")
                raise

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        async with self._lock:
            await self._thread.close()
