"""Revoked token ids in SQL: the revocation list every node sharing the database sees."""

from __future__ import annotations

import time

from yamabiko.store.sql.database import Database

_IS_REVOKED = "SELECT 1 AS found FROM revoked_tokens WHERE tenant_id = $1 AND jti = $2"


class SqlRevokedTokens:
    """:class:`~yamabiko.store.revocations.RevokedTokens` in SQL. A revocation is
    committed when ``revoke`` returns, so every node reading the database sees it.
    Expired entries are pruned on each ``revoke``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def revoke(self, tenant_id: str, jti: str, expires_at: float) -> None:
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM revoked_tokens WHERE expires_at < $1", time.time())
            # Revoking twice keeps the later expiry: the token stays refused as long as
            # either revocation asked.
            await tx.execute(
                "INSERT INTO revoked_tokens (tenant_id, jti, expires_at, revoked_at)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, jti) DO UPDATE SET expires_at ="
                " CASE WHEN excluded.expires_at > revoked_tokens.expires_at"
                " THEN excluded.expires_at ELSE revoked_tokens.expires_at END,"
                " revoked_at = excluded.revoked_at",
                tenant_id,
                jti,
                float(expires_at),
                time.time(),
            )

    async def is_revoked(self, tenant_id: str, jti: str) -> bool:
        # Every handshake asks: read at once where the database can (the embedded
        # file), else through the pool.
        rows = self._db.fetch_now(_IS_REVOKED, tenant_id, jti)
        if rows is None:
            rows = await self._db.fetch(_IS_REVOKED, tenant_id, jti)
        return bool(rows)

    async def revoked_since(self, since: float) -> list[tuple[str, str]]:
        rows = await self._db.fetch(
            "SELECT tenant_id, jti FROM revoked_tokens WHERE revoked_at >= $1", float(since)
        )
        return [(row["tenant_id"], row["jti"]) for row in rows]
