"""Personal ghost-text counts in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from yamabiko.schema.objects import TenantId, UserId
from yamabiko.store.ids import utc_now
from yamabiko.store.sql.database import Database

GhostCountRow = tuple[str, str, int]


class SqlGhostCounts:
    """:class:`~yamabiko.store.repositories.GhostCountRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, tenant_id: TenantId, user: UserId, engine: str, rows: Sequence[GhostCountRow]
    ) -> None:
        if not rows:
            return
        now = utc_now()
        async with self._db.transaction() as tx:
            for context, token, count in rows:
                await tx.execute(
                    "INSERT INTO ghost_counts (tenant_id, user_id, engine, context, token,"
                    " count, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (tenant_id, user_id, engine, context, token) DO UPDATE"
                    " SET count = ghost_counts.count + excluded.count,"
                    " updated_at = excluded.updated_at",
                    tenant_id,
                    user,
                    engine,
                    context,
                    token,
                    count,
                    now,
                )

    async def load(
        self, tenant_id: TenantId, user: UserId, engine: str, *, limit: int = 100_000
    ) -> list[GhostCountRow]:
        rows = await self._db.fetch(
            "SELECT context, token, count FROM ghost_counts"
            " WHERE tenant_id = $1 AND user_id = $2 AND engine = $3"
            " ORDER BY updated_at DESC LIMIT $4",
            tenant_id,
            user,
            engine,
            limit,
        )
        return [(str(r["context"]), str(r["token"]), int(r["count"])) for r in rows]
