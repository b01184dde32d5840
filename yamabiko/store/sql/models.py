"""The model catalogue in SQL.

Global entries are stored with ``tenant_id = ''`` (a primary key column cannot be NULL)
and come back as None; no tenant id is empty. Queries name the table's column as
``m.tenant_id``, never bare, as the select list reuses that name for the NULLIF.
"""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from msgspec import UNSET, UnsetType

from yamabiko.schema.objects import ModelEntry, ModelId, Page, TenantId
from yamabiko.store.errors import AlreadyExists
from yamabiko.store.ids import utc_now
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.sql.database import Database
from yamabiko.store.sql.rows import fetch_page, listed, provided, set_clause, to_object

GLOBAL: Final = ""

_COLUMNS = (
    "id, NULLIF(tenant_id, '') AS tenant_id, provider, provider_model, aliases,"
    " input_price_per_mtok, output_price_per_mtok, context_window, created_at, updated_at"
)
_JSON = ("aliases",)

# The entries tenant $1 sees: its own, and the global ones it does not override.
_VISIBLE = (
    "m.tenant_id = $1 OR (m.tenant_id = '' AND m.id NOT IN"
    " (SELECT own.id FROM models own WHERE own.tenant_id = $1))"
)


class SqlModels:
    """:class:`~yamabiko.store.repositories.ModelRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(
        self,
        tenant_id: TenantId | None,
        model_id: ModelId,
        *,
        provider: str,
        provider_model: str,
        aliases: Sequence[str] = (),
        input_price_per_mtok: float,
        output_price_per_mtok: float,
        context_window: int,
    ) -> ModelEntry:
        row = await self._db.fetchrow(
            "INSERT INTO models (tenant_id, id, provider, provider_model, aliases,"
            " input_price_per_mtok, output_price_per_mtok, context_window, created_at,"
            " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
            f" ON CONFLICT (tenant_id, id) DO NOTHING RETURNING {_COLUMNS}",
            tenant_id or GLOBAL,
            model_id,
            provider,
            provider_model,
            list(aliases),
            input_price_per_mtok,
            output_price_per_mtok,
            context_window,
            utc_now(),
        )
        if row is None:
            raise AlreadyExists(f"model {model_id!r} is already registered")
        return to_object(self._db.dialect, row, ModelEntry, _JSON)

    async def get(self, tenant_id: TenantId, model: str) -> ModelEntry | None:
        # A global entry the tenant overrides (same id) is invisible to it, aliases
        # included, as in list(). Then: the tenant's own first (m.tenant_id = '' is false
        # for them, and false sorts first), an exact id before an alias, then by id.
        alias = self._db.dialect.json_array_has("m.aliases", "$2")
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM models m"
            f" WHERE ({_VISIBLE}) AND (m.id = $2 OR {alias})"
            " ORDER BY m.tenant_id = '', m.id <> $2, m.id LIMIT 1",
            tenant_id,
            model,
        )
        return None if row is None else to_object(self._db.dialect, row, ModelEntry, _JSON)

    async def list(
        self, tenant_id: TenantId | None, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[ModelEntry]:
        return await fetch_page(
            self._db,
            ModelEntry,
            select=f"SELECT {_COLUMNS} FROM models m",
            where=_VISIBLE,
            args=(tenant_id or GLOBAL,),
            limit=limit,
            cursor=cursor,
            json=_JSON,
        )

    async def update(
        self,
        tenant_id: TenantId | None,
        model_id: ModelId,
        *,
        provider: str | UnsetType = UNSET,
        provider_model: str | UnsetType = UNSET,
        aliases: Sequence[str] | UnsetType = UNSET,
        input_price_per_mtok: float | UnsetType = UNSET,
        output_price_per_mtok: float | UnsetType = UNSET,
        context_window: int | UnsetType = UNSET,
    ) -> ModelEntry | None:
        changes = provided(
            provider=provider,
            provider_model=provider_model,
            aliases=listed(aliases),
            input_price_per_mtok=input_price_per_mtok,
            output_price_per_mtok=output_price_per_mtok,
            context_window=context_window,
            updated_at=utc_now(),
        )
        assignments, values = set_clause(changes, first=3)
        row = await self._db.fetchrow(
            f"UPDATE models SET {assignments} WHERE tenant_id = $1 AND id = $2"
            f" RETURNING {_COLUMNS}",
            tenant_id or GLOBAL,
            model_id,
            *values,
        )
        return None if row is None else to_object(self._db.dialect, row, ModelEntry, _JSON)

    async def delete(self, tenant_id: TenantId | None, model_id: ModelId) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM models WHERE tenant_id = $1 AND id = $2", tenant_id or GLOBAL, model_id
        )
        return deleted > 0
