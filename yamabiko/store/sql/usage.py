"""Usage events and reports in SQL."""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

from datetime import datetime

from yamabiko.schema.objects import TenantId, UsageEvent, UsageGroupBy, UsageRow, UserId
from yamabiko.store.ids import new_id, utc_now
from yamabiko.store.sql.database import Database
from yamabiko.store.sql.rows import to_object

# "user" is a reserved word in PostgreSQL: the column is user_id, named back on the way out.
_EVENT = 'id, tenant_id, user_id AS "user", model, input_tokens, output_tokens, cost_usd, at'


class SqlUsage:
    """:class:`~yamabiko.store.repositories.UsageRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        tenant_id: TenantId,
        user: UserId,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        at: datetime | None = None,
    ) -> UsageEvent:
        row = await self._db.fetchrow(
            "INSERT INTO usage_events (id, tenant_id, user_id, model, input_tokens,"
            " output_tokens, cost_usd, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            f" RETURNING {_EVENT}",
            new_id(),
            tenant_id,
            user,
            model,
            input_tokens,
            output_tokens,
            cost_usd,
            at or utc_now(),
        )
        assert row is not None  # an INSERT without conflict handling returns its row
        return to_object(self._db.dialect, row, UsageEvent)

    async def report(
        self, tenant_id: TenantId, *, start: datetime, end: datetime, group_by: UsageGroupBy
    ) -> list[UsageRow]:
        key = {"day": self._db.dialect.day("at"), "model": "model", "user": "user_id"}[group_by]
        # SUM over integers is numeric in PostgreSQL: cast back to a plain integer.
        rows = await self._db.fetch(
            f'SELECT {key} AS "key",'
            " CAST(SUM(input_tokens) AS BIGINT) AS input_tokens,"
            " CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,"
            " SUM(cost_usd) AS cost_usd, COUNT(*) AS requests"
            " FROM usage_events WHERE tenant_id = $1 AND at >= $2 AND at < $3"
            f' GROUP BY {key} ORDER BY "key"',
            tenant_id,
            start,
            end,
        )
        return [to_object(self._db.dialect, row, UsageRow) for row in rows]

    async def total_cost(self, tenant_id: TenantId, *, start: datetime, end: datetime) -> float:
        row = await self._db.fetchrow(
            "SELECT COALESCE(SUM(cost_usd), 0.0) AS total FROM usage_events"
            " WHERE tenant_id = $1 AND at >= $2 AND at < $3",
            tenant_id,
            start,
            end,
        )
        assert row is not None  # an aggregate always returns one row
        return float(row["total"])
