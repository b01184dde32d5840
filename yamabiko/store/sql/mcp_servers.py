"""Tenants' MCP servers in SQL, their header values encrypted at rest.

Each value of ``headers`` is stored as a Fernet token of the store's
:class:`~yamabiko.store.crypto.SecretBox` (the names stay readable: they are not secret
and show what a server needs); ``headers_sealed`` says a row's values are tokens. Rows
written before encryption existed are sealed when the store opens
(:meth:`SqlMcpServers.seal_plaintext_headers`), and a row still unsealed (written by an
older node during a rolling upgrade) is read as plaintext until then. Values leave this
module decrypted, for the handlers to resolve and redact (``docs/store.md``).
"""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import msgspec

from yamabiko.protocol.errors import InvalidParams
from yamabiko.schema.objects import (
    McpServer,
    McpServerId,
    McpTransport,
    Page,
    TenantId,
    UserId,
)
from yamabiko.store.crypto import InvalidToken, SecretBox
from yamabiko.store.errors import AlreadyExists, SecretDecryptError
from yamabiko.store.ids import new_id, utc_now
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.sql.database import Database
from yamabiko.store.sql.rows import fetch_page, to_object

_COLUMNS = (
    "id, tenant_id, name, transport, command, args, url, headers, created_at, updated_at,"
    " created_by, headers_sealed"
)
_JSON = ("args", "headers")
_VALUES_PER_SLICE = 32
"""Header values decrypted between two yields to the loop when listing (~30-70 µs each)."""


class _Stored(McpServer, frozen=True):
    """A row as stored: header values are tokens when ``headers_sealed``."""

    headers_sealed: int = 0


class SqlMcpServers:
    """:class:`~yamabiko.store.repositories.McpServerRepository` in SQL."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    def __repr__(self) -> str:
        return f"SqlMcpServers({self._box!r})"

    def _seal(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {name: self._box.encrypt(value) for name, value in headers.items()}

    def _open(self, stored: _Stored) -> McpServer:
        fields = msgspec.structs.asdict(stored)
        del fields["headers_sealed"]
        if stored.headers_sealed:
            try:
                fields["headers"] = {n: self._box.decrypt(v) for n, v in stored.headers.items()}
            except InvalidToken:
                raise SecretDecryptError(
                    f"a header of MCP server {stored.id} cannot be decrypted with the"
                    " configured keys"
                ) from None
        return McpServer(**fields)

    async def add(
        self,
        tenant_id: TenantId,
        *,
        name: str,
        transport: McpTransport,
        command: str | None = None,
        args: Sequence[str] = (),
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        created_by: UserId | None = None,
    ) -> McpServer:
        if transport == "stdio" and not command:
            raise InvalidParams("an stdio MCP server needs a command")
        if transport == "http" and not url:
            raise InvalidParams("an http MCP server needs a url")
        row = await self._db.fetchrow(
            "INSERT INTO mcp_servers (id, tenant_id, name, transport, command, args, url,"
            " headers, created_at, updated_at, created_by, headers_sealed)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, 1)"
            f" ON CONFLICT (tenant_id, name) DO NOTHING RETURNING {_COLUMNS}",
            new_id(),
            tenant_id,
            name,
            transport,
            command,
            list(args),
            url,
            self._seal(headers or {}),
            utc_now(),
            created_by,
        )
        if row is None:
            raise AlreadyExists(f"an MCP server named {name!r} already exists")
        return self._open(to_object(self._db.dialect, row, _Stored, _JSON))

    async def get(self, tenant_id: TenantId, server_id: McpServerId) -> McpServer | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM mcp_servers WHERE id = $1 AND tenant_id = $2",
            server_id,
            tenant_id,
        )
        return None if row is None else self._open(to_object(self._db.dialect, row, _Stored, _JSON))

    async def list(
        self, tenant_id: TenantId, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[McpServer]:
        page = await fetch_page(
            self._db,
            _Stored,
            select=f"SELECT {_COLUMNS} FROM mcp_servers",
            where="tenant_id = $1",
            args=(tenant_id,),
            limit=limit,
            cursor=cursor,
            json=_JSON,
        )
        items: list[McpServer] = []
        opened = 0
        for stored in page.items:
            items.append(self._open(stored))
            opened += len(stored.headers)
            if opened >= _VALUES_PER_SLICE:
                # A page may hold 100 servers of 32 headers: decrypt in slices of ~2 ms
                # so that other clients are served in between.
                opened = 0
                await asyncio.sleep(0)
        return Page(items=items, next_cursor=page.next_cursor)

    async def remove(self, tenant_id: TenantId, server_id: McpServerId) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM mcp_servers WHERE id = $1 AND tenant_id = $2", server_id, tenant_id
        )
        return deleted > 0

    async def seal_plaintext_headers(self) -> int:
        """Encrypts the header values of every row still in plaintext (written before
        encryption at rest, or by an older node); the number of rows sealed. Safe to run
        on several nodes at once: a row is sealed only while it is unsealed."""
        sealed = 0
        async with self._db.transaction() as tx:
            rows = await tx.fetch(f"SELECT {_COLUMNS} FROM mcp_servers WHERE headers_sealed = 0")
            for row in rows:
                stored = to_object(self._db.dialect, row, _Stored, _JSON)
                sealed += await tx.execute(
                    "UPDATE mcp_servers SET headers = $2, headers_sealed = 1"
                    " WHERE id = $1 AND headers_sealed = 0",
                    stored.id,
                    self._seal(stored.headers),
                )
        return sealed

    async def reencrypt_all(self) -> int:
        """Re-encrypts every sealed header value with the first key, in one
        transaction; the number of servers. Raises SecretDecryptError, changing
        nothing, if a value opens with no configured key."""
        async with self._db.transaction() as tx:
            rows = await tx.fetch(f"SELECT {_COLUMNS} FROM mcp_servers WHERE headers_sealed = 1")
            for row in rows:
                stored = to_object(self._db.dialect, row, _Stored, _JSON)
                try:
                    rotated = {n: self._box.rotate(v) for n, v in stored.headers.items()}
                except InvalidToken:
                    raise SecretDecryptError(
                        f"a header of MCP server {stored.id} cannot be decrypted with the"
                        " configured keys; nothing was re-encrypted"
                    ) from None
                await tx.execute(
                    "UPDATE mcp_servers SET headers = $2 WHERE id = $1", stored.id, rotated
                )
        return len(rows)
