"""Who is on the other end of a session: the verified claims of their token."""

from __future__ import annotations

from typing import Final

from msgspec import Struct

SCOPES: Final = frozenset({"chat", "agent", "ghost", "audio", "mcp", "admin"})
"""Every scope a token may carry (docs/configuration.md, Authentication)."""


class Identity(Struct, frozen=True):
    """The claims of a verified token. Built only by the token verifier."""

    sub: str
    """The user."""
    tid: str
    """The tenant."""
    scopes: frozenset[str]
    exp: float
    """Expiry, seconds since the epoch (UTC)."""
    jti: str | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
