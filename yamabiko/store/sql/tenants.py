"""Tenants in SQL."""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

from msgspec import UNSET, UnsetType

from yamabiko.protocol.errors import InvalidParams
from yamabiko.schema.objects import Page, RateLimits, Tenant, TenantId
from yamabiko.store.errors import AlreadyExists
from yamabiko.store.ids import new_id, utc_now
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.sql.database import Database
from yamabiko.store.sql.rows import fetch_page, provided, set_clause, to_object

_COLUMNS = (
    "id, name, system_prompt, default_model, monthly_budget_usd, rate_limits, "
    "created_at, updated_at"
)
_JSON = ("rate_limits",)

# What a tenant's deletion takes with it (children of these go by ON DELETE CASCADE);
# usage_events and audit_events stay as history.
_TENANT_DATA = ("agents", "conversations", "mcp_servers", "models", "revoked_tokens")


class SqlTenants:
    """:class:`~yamabiko.store.repositories.TenantRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        tenant_id: TenantId | None = None,
        name: str,
        system_prompt: str | None = None,
        default_model: str | None = None,
        monthly_budget_usd: float | None = None,
        rate_limits: RateLimits | None = None,
    ) -> Tenant:
        if tenant_id == "":
            # '' means "no tenant" in the models and audit tables.
            raise InvalidParams("a tenant id must not be empty")
        now = utc_now()
        row = await self._db.fetchrow(
            "INSERT INTO tenants (id, name, system_prompt, default_model, monthly_budget_usd,"
            " rate_limits, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
            f" ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
            tenant_id or new_id(),
            name,
            system_prompt,
            default_model,
            monthly_budget_usd,
            rate_limits,
            now,
        )
        if row is None:
            raise AlreadyExists("a tenant with this id already exists")
        return to_object(self._db.dialect, row, Tenant, _JSON)

    async def get(self, tenant_id: TenantId) -> Tenant | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM tenants WHERE id = $1", tenant_id)
        return None if row is None else to_object(self._db.dialect, row, Tenant, _JSON)

    async def update(
        self,
        tenant_id: TenantId,
        *,
        name: str | UnsetType = UNSET,
        system_prompt: str | UnsetType | None = UNSET,
        default_model: str | UnsetType | None = UNSET,
        monthly_budget_usd: float | UnsetType | None = UNSET,
        rate_limits: RateLimits | UnsetType | None = UNSET,
    ) -> Tenant | None:
        changes = provided(
            name=name,
            system_prompt=system_prompt,
            default_model=default_model,
            monthly_budget_usd=monthly_budget_usd,
            rate_limits=rate_limits,
            updated_at=utc_now(),
        )
        assignments, values = set_clause(changes, first=2)
        row = await self._db.fetchrow(
            f"UPDATE tenants SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
            tenant_id,
            *values,
        )
        return None if row is None else to_object(self._db.dialect, row, Tenant, _JSON)

    async def delete(self, tenant_id: TenantId) -> bool:
        async with self._db.transaction() as tx:
            if not await tx.execute("DELETE FROM tenants WHERE id = $1", tenant_id):
                return False
            for table in _TENANT_DATA:
                await tx.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
            return True

    async def list(self, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page[Tenant]:
        return await fetch_page(
            self._db,
            Tenant,
            select=f"SELECT {_COLUMNS} FROM tenants",
            where="TRUE",
            args=(),
            limit=limit,
            cursor=cursor,
            json=_JSON,
        )
