"""The database interface the repositories use, and the choice of backend by URL.

Values cross this interface as Python values: ``datetime`` (aware, UTC), ``bool``,
``dict``/``list``/Struct for JSON columns, ``str``/``int``/``float``/``None``. Each backend
adapts them to its column types. Rows come back as dicts; a backend that cannot give
back the Python types itself (SQLite returns text for timestamps and JSON) says so in
its dialect, and :mod:`.rows` finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from yamabiko.store.errors import StoreConfigError

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL dialects, beyond the schema."""

    name: str
    """Also the migrations' folder name."""
    json_as_text: bool
    """JSON columns come back as text, to be decoded."""
    day: Callable[[str], str]
    """SQL for the UTC day (``YYYY-MM-DD``) of a timestamp column."""
    json_array_has: Callable[[str, str], str]
    """SQL testing whether a JSON array column holds a string parameter."""
    schema_migrations_ddl: str
    migration_lock: str | None
    """SQL taking a lock held until the migration's transaction ends, if the
    transaction itself does not already exclude other writers."""


class Executor(Protocol):
    """Runs statements, inside a transaction or not. Placeholders are ``$1``, ``$2``..."""

    @property
    def dialect(self) -> Dialect: ...

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        """The first row, or None."""
        ...

    async def execute(self, sql: str, *args: object) -> int:
        """Runs one statement; the number of rows it changed."""
        ...

    async def script(self, sql: str) -> None:
        """Runs several statements with no parameters (a migration file)."""
        ...


class Database(Executor, Protocol):
    """A connection or pool. Statements outside a transaction commit on their own."""

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """An executor whose statements commit together when the block ends normally and
        roll back when it raises (cancellation included). It excludes other writers
        from the start on SQLite; on PostgreSQL, rows are locked as they are written.
        Inside the block, use only the executor it gives: on SQLite the database's own
        methods wait for the block to end."""
        ...

    def fetch_now(self, sql: str, *args: object) -> list[Row] | None:
        """The rows of a small point read done at once on the caller's thread, or None
        when this database cannot read without waiting (then use ``fetch``)."""
        ...

    async def ping(self) -> None:
        """Returns when the database answers; raises otherwise."""
        ...

    async def close(self) -> None:
        """Closes the connections. Idempotent."""
        ...


async def connect(url: str) -> Database:
    """Opens the database a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (the SQLAlchemy
    convention: what follows ``sqlite:///`` is the path) or ``sqlite:///:memory:``;
    ``postgresql://...`` or ``postgres://...``, a libpq-style URL whose extra query
    parameters are PostgreSQL settings (``?search_path=myschema``).
    """
    # Imported here so that choosing one backend never needs the other's driver loaded.
    if url.startswith("sqlite:///"):
        from yamabiko.store.sql.sqlite import SqliteDatabase

        return await SqliteDatabase.open(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from yamabiko.store.sql.postgres import PostgresDatabase

        return await PostgresDatabase.open(url)
    scheme = url.partition(":")[0]
    if scheme == "sqlite":
        raise StoreConfigError("an SQLite URL is sqlite:///PATH (three slashes, then the path)")
    raise StoreConfigError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://..."
    )
