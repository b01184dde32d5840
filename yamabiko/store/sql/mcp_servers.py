"""Tenants' MCP servers in SQL."""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

from collections.abc import Mapping, Sequence

from yamabiko.protocol.errors import InvalidParams
from yamabiko.schema.objects import McpServer, McpServerId, McpTransport, Page, TenantId
from yamabiko.store.errors import AlreadyExists
from yamabiko.store.ids import new_id, utc_now
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.sql.database import Database
from yamabiko.store.sql.rows import fetch_page, to_object

_COLUMNS = "id, tenant_id, name, transport, command, args, url, headers, created_at, updated_at"
_JSON = ("args", "headers")


class SqlMcpServers:
    """:class:`~yamabiko.store.repositories.McpServerRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
    ) -> McpServer:
        if transport == "stdio" and not command:
            raise InvalidParams("an stdio MCP server needs a command")
        if transport == "http" and not url:
            raise InvalidParams("an http MCP server needs a url")
        row = await self._db.fetchrow(
            "INSERT INTO mcp_servers (id, tenant_id, name, transport, command, args, url,"
            " headers, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
            f" ON CONFLICT (tenant_id, name) DO NOTHING RETURNING {_COLUMNS}",
            new_id(),
            tenant_id,
            name,
            transport,
            command,
            list(args),
            url,
            dict(headers or {}),
            utc_now(),
        )
        if row is None:
            raise AlreadyExists(f"an MCP server named {name!r} already exists")
        return to_object(self._db.dialect, row, McpServer, _JSON)

    async def get(self, tenant_id: TenantId, server_id: McpServerId) -> McpServer | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM mcp_servers WHERE id = $1 AND tenant_id = $2",
            server_id,
            tenant_id,
        )
        return None if row is None else to_object(self._db.dialect, row, McpServer, _JSON)

    async def list(
        self, tenant_id: TenantId, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[McpServer]:
        return await fetch_page(
            self._db,
            McpServer,
            select=f"SELECT {_COLUMNS} FROM mcp_servers",
            where="tenant_id = $1",
            args=(tenant_id,),
            limit=limit,
            cursor=cursor,
            json=_JSON,
        )

    async def remove(self, tenant_id: TenantId, server_id: McpServerId) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM mcp_servers WHERE id = $1 AND tenant_id = $2", server_id, tenant_id
        )
        return deleted > 0
