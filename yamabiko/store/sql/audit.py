"""The audit trail in SQL.

Events with no tenant are stored with ``tenant_id = ''`` and come back as None; queries
name the table's column as ``e.tenant_id``, as the select list reuses the name.
"""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from yamabiko.schema.objects import AuditEvent, AuditOutcome, Page, TenantId
from yamabiko.store.ids import new_id, utc_now
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.sql.database import Database
from yamabiko.store.sql.rows import fetch_page, to_object

NO_TENANT: Final = ""

_COLUMNS = "id, NULLIF(tenant_id, '') AS tenant_id, subject, action, target, outcome, detail, at"
_JSON = ("detail",)


class SqlAudit:
    """:class:`~yamabiko.store.repositories.AuditRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        tenant_id: TenantId | None,
        *,
        subject: str | None,
        action: str,
        outcome: AuditOutcome,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        row = await self._db.fetchrow(
            "INSERT INTO audit_events (id, tenant_id, subject, action, target, outcome, detail,"
            f" at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}",
            new_id(),
            tenant_id or NO_TENANT,
            subject,
            action,
            target,
            outcome,
            dict(detail or {}),
            utc_now(),
        )
        assert row is not None  # an INSERT without conflict handling returns its row
        return to_object(self._db.dialect, row, AuditEvent, _JSON)

    async def delete_before(self, cutoff: datetime, *, limit: int = 1000) -> int:
        # One bounded batch per call: a long delete would hold the write lock (SQLite)
        # or a big transaction (PostgreSQL) while handshakes want to write.
        return await self._db.execute(
            "DELETE FROM audit_events WHERE id IN"
            " (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
            cutoff,
            limit,
        )

    async def list(
        self,
        tenant_id: TenantId | None,
        *,
        action: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        return await fetch_page(
            self._db,
            AuditEvent,
            select=f"SELECT {_COLUMNS} FROM audit_events e",
            where="e.tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR e.action = $2)",
            args=(tenant_id or NO_TENANT, action),
            limit=limit,
            cursor=cursor,
            json=_JSON,
            order_by="at",
            order="desc",
        )
