"""Revoked token ids (``jti``): a token whose id is here is refused at the handshake and
its open sessions are closed with 4001."""

from __future__ import annotations

import time
from typing import Protocol


class RevokedTokens(Protocol):
    """The revocation list. Guarantees: ``revoke`` is idempotent; a revocation is visible
    to ``is_revoked`` on every node once ``revoke`` returns; entries may be forgotten
    after their ``expires_at`` (the token is refused for its expiry by then)."""

    async def revoke(self, tenant_id: str, jti: str, expires_at: float) -> None: ...

    async def is_revoked(self, tenant_id: str, jti: str) -> bool: ...

    async def revoked_since(self, since: float) -> list[tuple[str, str]]:
        """``(tenant_id, jti)`` of every revocation made at or after ``since`` (epoch
        seconds): each node's sweeper asks this to close sessions using them."""
        ...


class MemoryRevokedTokens:
    """In-process revocation list: the embedded default for one node."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], float] = {}
        self._revoked_at: dict[tuple[str, str], float] = {}

    async def revoke(self, tenant_id: str, jti: str, expires_at: float) -> None:
        self._entries[(tenant_id, jti)] = expires_at
        self._revoked_at[(tenant_id, jti)] = time.time()
        self._prune()

    async def is_revoked(self, tenant_id: str, jti: str) -> bool:
        return (tenant_id, jti) in self._entries

    async def revoked_since(self, since: float) -> list[tuple[str, str]]:
        return [key for key, at in self._revoked_at.items() if at >= since]

    def _prune(self) -> None:
        now = time.time()
        for key in [k for k, exp in self._entries.items() if exp < now]:
            del self._entries[key]
            self._revoked_at.pop(key, None)
