"""Agents' secrets in SQL: ciphertext only, values never returned but by ``get_value``."""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

from yamabiko.schema.objects import AgentId, SecretInfo, TenantId, UserId
from yamabiko.store.crypto import InvalidToken, SecretBox
from yamabiko.store.errors import SecretDecryptError
from yamabiko.store.ids import utc_now
from yamabiko.store.sql.database import Database, Executor
from yamabiko.store.sql.rows import owner_filter, to_object

_INFO = "agent_id, name, created_at, updated_at"


async def _agent_visible(
    db: Executor, tenant_id: TenantId, agent_id: AgentId, owner: UserId | None
) -> bool:
    row = await db.fetchrow(
        f"SELECT 1 AS found FROM agents WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)}",
        agent_id,
        tenant_id,
        owner,
    )
    return row is not None


class SqlSecrets:
    """:class:`~yamabiko.store.repositories.SecretRepository` in SQL."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    def __repr__(self) -> str:
        return f"SqlSecrets({self._box!r})"

    async def set(
        self, tenant_id: TenantId, agent_id: AgentId, name: str, value: str, *, owner: UserId | None
    ) -> SecretInfo | None:
        ciphertext = self._box.encrypt(value)
        async with self._db.transaction() as tx:
            if not await _agent_visible(tx, tenant_id, agent_id, owner):
                return None
            row = await tx.fetchrow(
                "INSERT INTO agent_secrets (tenant_id, agent_id, name, ciphertext, created_at,"
                " updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (agent_id, name)"
                " DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at"
                f" RETURNING {_INFO}",
                tenant_id,
                agent_id,
                name,
                ciphertext,
                utc_now(),
            )
        assert row is not None  # an upsert always returns its row
        return to_object(self._db.dialect, row, SecretInfo)

    async def list(
        self, tenant_id: TenantId, agent_id: AgentId, *, owner: UserId | None
    ) -> list[SecretInfo] | None:
        async with self._db.transaction() as tx:
            if not await _agent_visible(tx, tenant_id, agent_id, owner):
                return None
            rows = await tx.fetch(
                f"SELECT {_INFO} FROM agent_secrets WHERE tenant_id = $1 AND agent_id = $2"
                " ORDER BY name",
                tenant_id,
                agent_id,
            )
        return [to_object(self._db.dialect, row, SecretInfo) for row in rows]

    async def delete(
        self, tenant_id: TenantId, agent_id: AgentId, name: str, *, owner: UserId | None
    ) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM agent_secrets WHERE tenant_id = $1 AND agent_id = $2 AND name = $3"
            f" AND agent_id IN (SELECT id FROM agents WHERE tenant_id = $1 AND {owner_filter(4)})",
            tenant_id,
            agent_id,
            name,
            owner,
        )
        return deleted > 0

    async def get_value(self, tenant_id: TenantId, agent_id: AgentId, name: str) -> str | None:
        row = await self._db.fetchrow(
            "SELECT ciphertext FROM agent_secrets"
            " WHERE tenant_id = $1 AND agent_id = $2 AND name = $3",
            tenant_id,
            agent_id,
            name,
        )
        if row is None:
            return None
        try:
            return self._box.decrypt(row["ciphertext"])
        except InvalidToken:
            raise SecretDecryptError(
                f"secret {name!r} of agent {agent_id} cannot be decrypted with the configured keys"
            ) from None

    async def reencrypt_all(self) -> int:
        async with self._db.transaction() as tx:
            rows = await tx.fetch("SELECT agent_id, name, ciphertext FROM agent_secrets")
            for row in rows:
                try:
                    rotated = self._box.rotate(row["ciphertext"])
                except InvalidToken:
                    # Raising rolls the whole rotation back: nothing is half-rotated.
                    raise SecretDecryptError(
                        f"secret {row['name']!r} of agent {row['agent_id']} cannot be decrypted"
                        " with the configured keys; nothing was re-encrypted"
                    ) from None
                await tx.execute(
                    "UPDATE agent_secrets SET ciphertext = $3 WHERE agent_id = $1 AND name = $2",
                    row["agent_id"],
                    row["name"],
                    rotated,
                )
        return len(rows)
