"""Agents in SQL."""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

from collections.abc import Sequence

from msgspec import UNSET, UnsetType

from yamabiko.schema.objects import Agent, AgentId, McpServerId, Page, TenantId, UserId
from yamabiko.store.ids import new_id, utc_now
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.sql.database import Database
from yamabiko.store.sql.rows import (
    fetch_page,
    listed,
    owner_filter,
    provided,
    set_clause,
    to_object,
)

_COLUMNS = (
    "id, tenant_id, owner, name, personality, system_prompt, model, temperature, skills,"
    " mcp_server_ids, fallback_models, created_at, updated_at"
)
_JSON = ("skills", "mcp_server_ids", "fallback_models")


class SqlAgents:
    """:class:`~yamabiko.store.repositories.AgentRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        tenant_id: TenantId,
        owner: UserId,
        *,
        name: str,
        personality: str = "",
        system_prompt: str = "",
        model: str | None = None,
        temperature: float | None = None,
        skills: Sequence[str] = (),
        mcp_server_ids: Sequence[McpServerId] = (),
        fallback_models: Sequence[str] = (),
    ) -> Agent:
        row = await self._db.fetchrow(
            "INSERT INTO agents (id, tenant_id, owner, name, personality, system_prompt, model,"
            " temperature, skills, mcp_server_ids, fallback_models, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
            f" RETURNING {_COLUMNS}",
            new_id(),
            tenant_id,
            owner,
            name,
            personality,
            system_prompt,
            model,
            temperature,
            list(skills),
            list(mcp_server_ids),
            list(fallback_models),
            utc_now(),
        )
        assert row is not None  # an INSERT without conflict handling returns its row
        return to_object(self._db.dialect, row, Agent, _JSON)

    async def get(
        self, tenant_id: TenantId, agent_id: AgentId, *, owner: UserId | None
    ) -> Agent | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM agents WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)}",
            agent_id,
            tenant_id,
            owner,
        )
        return None if row is None else to_object(self._db.dialect, row, Agent, _JSON)

    async def update(
        self,
        tenant_id: TenantId,
        agent_id: AgentId,
        *,
        owner: UserId | None,
        name: str | UnsetType = UNSET,
        personality: str | UnsetType = UNSET,
        system_prompt: str | UnsetType = UNSET,
        model: str | UnsetType | None = UNSET,
        temperature: float | UnsetType | None = UNSET,
        skills: Sequence[str] | UnsetType = UNSET,
        mcp_server_ids: Sequence[McpServerId] | UnsetType = UNSET,
        fallback_models: Sequence[str] | UnsetType = UNSET,
    ) -> Agent | None:
        changes = provided(
            name=name,
            personality=personality,
            system_prompt=system_prompt,
            model=model,
            temperature=temperature,
            skills=listed(skills),
            mcp_server_ids=listed(mcp_server_ids),
            fallback_models=listed(fallback_models),
            updated_at=utc_now(),
        )
        assignments, values = set_clause(changes, first=4)
        row = await self._db.fetchrow(
            f"UPDATE agents SET {assignments}"
            f" WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)} RETURNING {_COLUMNS}",
            agent_id,
            tenant_id,
            owner,
            *values,
        )
        return None if row is None else to_object(self._db.dialect, row, Agent, _JSON)

    async def delete(self, tenant_id: TenantId, agent_id: AgentId, *, owner: UserId | None) -> bool:
        # Its secrets go with it: agent_secrets references agents ON DELETE CASCADE.
        deleted = await self._db.execute(
            f"DELETE FROM agents WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)}",
            agent_id,
            tenant_id,
            owner,
        )
        return deleted > 0

    async def list(
        self,
        tenant_id: TenantId,
        *,
        owner: UserId | None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Agent]:
        return await fetch_page(
            self._db,
            Agent,
            select=f"SELECT {_COLUMNS} FROM agents",
            where=f"tenant_id = $1 AND {owner_filter(2)}",
            args=(tenant_id, owner),
            limit=limit,
            cursor=cursor,
            json=_JSON,
        )
