"""Admission: whether a handshake (a socket, an MCP HTTP session or request) may go on,
decided in one place for every face (docs/security.md, "Admission").

Theory of operation
-------------------
A face turns its request into an :class:`AdmissionRequest` (path, headers, query, peer;
nothing of its transport) and calls :meth:`Admission.admit`. The checks run cheapest
first, and the first that fails is the answer:

1. the peer address's handshake rate (openings only): 429 ``rate_limited``;
2. the ``Origin`` against the allowlist (when one is set): 403 ``origin_not_allowed``;
3. a token, from ``Authorization: Bearer``, a ``bearer.<jwt>`` subprotocol, or the
   ``access_token`` query parameter (where the face allows it): 401 ``missing_token``;
4. the token's verification: 401 ``invalid_token``;
5. the user's places of that kind (``socket`` or ``mcp_session``) against its limit:
   429 ``too_many_connections`` / ``too_many_sessions``.

An admitted opening gets a :class:`Ticket` that holds one place of the user from that
moment: a handshake still in flight counts as much as an established session, so a
burst of handshakes cannot overshoot the limit. The face keeps the ticket on its own
per-connection object and calls :meth:`Ticket.release` when that goes, however it goes
(release is idempotent). The service keeps no per-connection state, only counts per
user, which fall back to nothing when the tickets are released.

Refusals are counted in :class:`~yamabiko.sessions.stats.Stats` by kind. A refusal
without an identity (no token, a bad one, a foreign origin, a flooding address) is
not audited: anyone can cause those at line rate, so they go to the log as one line
per kind per interval with a count. A refusal of an identified user is audited, at
most once per user and kind per interval (the next row carries how many were folded).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qs

from yamabiko.server.auth import TokenRejected, TokenVerifier
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.stats import Stats

log = logging.getLogger("yamabiko.admission")

AuditHook = Callable[[str | None, str | None, str, str, dict[str, Any]], Awaitable[None]]
"""``(tenant_id, subject, action, outcome, detail)``: records a security event."""

Place = Literal["socket", "mcp_session"]
"""What an admitted opening holds a place of, each kind with its own per-user limit."""

SUBPROTOCOL_TOKEN_PREFIX: Final = "bearer."
"""A browser cannot set headers on a WebSocket: it may offer ``bearer.<jwt>`` as a
subprotocol (next to ``yamabiko.v1``, which the server selects)."""
REPORT_INTERVAL_S: Final = 10.0
"""How often aggregated refusals are logged, and how often one user's refusals of one
kind may be audited."""
MAX_TRACKED_ADDRESSES: Final = 10_000
"""Handshake buckets kept; past this the oldest is forgotten (it starts full again)."""
MAX_TRACKED_AUDITS: Final = 10_000
_QUERY_MAX_BYTES: Final = 32 * 1024
_CHALLENGE: Final = 'Bearer realm="yamabiko"'


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """One handshake as any transport sees it. ``headers`` must answer ``get`` by
    lower-case name (a case-insensitive mapping, or a dict with lower-case keys)."""

    path: str
    headers: Mapping[str, str]
    query: str = ""
    peer: str = "?"
    """``host:port`` of the client, for the log and the per-address rate."""
    subprotocols: Sequence[str] = ()
    query_token: bool = True
    """Whether ``?access_token=`` is accepted (browsers need it on the socket; HTTP
    clients can always send a header, and URLs end up in proxies' logs)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP refusal: ``status``, a ``kind`` (the metric's label) and a one-line
    ``reason`` that is safe to show (never a token), with the headers to send."""

    status: int
    kind: str
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


class Ticket:
    """An admitted handshake: its identity and, for an opening, one held place of its
    user, given back by :meth:`release` (idempotent; call it when the connection or
    session goes, however it goes)."""

    __slots__ = ("_admission", "_key", "identity")

    def __init__(
        self,
        identity: Identity,
        admission: Admission | None = None,
        key: tuple[Place, str, str] | None = None,
    ) -> None:
        self.identity = identity
        self._admission = admission
        self._key = key

    def release(self) -> None:
        admission, key = self._admission, self._key
        self._admission = self._key = None
        if admission is not None and key is not None:
            admission._give_back(key)


class Admission:
    """The admission rules of one node. Cheap: no I/O but the token's verification (a
    JWKS fetch or a revocation lookup when configured) and sampled audit rows."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        allowed_origins: Iterable[str] = (),
        max_connections_per_user: int = 16,
        max_mcp_sessions_per_user: int = 8,
        handshakes_per_second: float = 100.0,
        handshake_burst: int = 2000,
        stats: Stats | None = None,
        audit: AuditHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier = verifier
        self.allowed_origins = frozenset(allowed_origins)
        self.limits: dict[Place, int] = {
            "socket": max_connections_per_user,
            "mcp_session": max_mcp_sessions_per_user,
        }
        self._rate = handshakes_per_second
        self._burst = float(handshake_burst)
        self.stats = stats or Stats()
        self.audit = audit
        self._clock = clock
        self._held: dict[tuple[Place, str, str], int] = {}
        self._held_total: dict[Place, int] = {"socket": 0, "mcp_session": 0}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._unreported: dict[str, int] = {}
        self._reported_at = clock()
        self._audited: dict[tuple[str, str, str], tuple[float, int]] = {}

    # Counting

    def held(self, place: Place, tenant: str | None = None, sub: str | None = None) -> int:
        """Places held (in flight and established): one user's, or everyone's."""
        if tenant is None or sub is None:
            return self._held_total[place]
        return self._held.get((place, tenant, sub), 0)

    def _give_back(self, key: tuple[Place, str, str]) -> None:
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)
        self._held_total[key[0]] = max(0, self._held_total[key[0]] - 1)

    # Deciding

    async def admit(self, request: AdmissionRequest, hold: Place | None) -> Ticket | Refusal:
        """The ticket of an admitted request (holding a place of kind ``hold``, if
        given), or the refusal to send. Never raises for anything the client sent."""
        peer = request.peer
        if hold is not None and not self._take_handshake(_address(peer)):
            return await self._refuse(
                Refusal(429, "rate_limited", "too many handshakes", (("Retry-After", "1"),)),
                peer,
            )
        origin = request.headers.get("origin")
        if self.allowed_origins and origin is not None and origin not in self.allowed_origins:
            return await self._refuse(
                Refusal(403, "origin_not_allowed", "origin not allowed"), peer
            )
        token = _token(request)
        if token is None:
            refusal = Refusal(
                401, "missing_token", "missing bearer token", (("WWW-Authenticate", _CHALLENGE),)
            )
            return await self._refuse(refusal, peer)
        try:
            identity = await self.verifier.verify(token)
        except TokenRejected as exc:
            challenge = f'{_CHALLENGE}, error="{exc.error}", error_description="{exc.reason}"'
            refusal = Refusal(401, "invalid_token", exc.reason, (("WWW-Authenticate", challenge),))
            return await self._refuse(refusal, peer)
        except Exception:
            # The revocation list or the key set could not be read: not the client's fault.
            log.exception("token verification failed")
            return await self._refuse(
                Refusal(503, "unavailable", "cannot check tokens now", (("Retry-After", "5"),)),
                peer,
            )
        if hold is None:
            return Ticket(identity)
        key = (hold, identity.tid, identity.sub)
        limit = self.limits[hold]
        if self._held.get(key, 0) >= limit:
            kind, what = (
                ("too_many_connections", "connections")
                if hold == "socket"
                else ("too_many_sessions", "MCP sessions")
            )
            refusal = Refusal(429, kind, f"too many {what} for this user (limit {limit})")
            return await self._refuse(refusal, peer, identity)
        # Taken before any await: a burst of handshakes sees every place already held.
        self._held[key] = self._held.get(key, 0) + 1
        self._held_total[hold] += 1
        return Ticket(identity, self, key)

    def _take_handshake(self, address: str) -> bool:
        if self._rate <= 0:
            return True
        now = self._clock()
        buckets = self._buckets
        tokens, at = buckets.pop(address, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if len(buckets) >= MAX_TRACKED_ADDRESSES:
            buckets.pop(next(iter(buckets)))
        allowed = tokens >= 1.0
        # Re-inserted last: the dict's order is least recently seen first.
        buckets[address] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    # Refusing

    async def _refuse(
        self, refusal: Refusal, peer: str, identity: Identity | None = None
    ) -> Refusal:
        self.stats.rejected(refusal.kind)
        self._unreported[refusal.kind] = self._unreported.get(refusal.kind, 0) + 1
        self.report()
        if identity is not None:
            await self._audit(refusal, peer, identity)
        return refusal

    async def _audit(self, refusal: Refusal, peer: str, identity: Identity) -> None:
        if self.audit is None:
            return
        now = self._clock()
        key = (identity.tid, identity.sub, refusal.kind)
        last, folded = self._audited.get(key, (-math.inf, 0))
        if now - last < REPORT_INTERVAL_S:
            self._audited[key] = (last, folded + 1)
            return
        if len(self._audited) >= MAX_TRACKED_AUDITS:
            self._audited.pop(next(iter(self._audited)))
        self._audited.pop(key, None)
        self._audited[key] = (now, 0)
        detail: dict[str, Any] = {"reason": refusal.reason, "status": refusal.status, "peer": peer}
        if folded:
            detail["alsoRefused"] = folded
        try:
            await self.audit(identity.tid, identity.sub, "connection.refused", "refused", detail)
        except Exception:
            log.exception("could not record an audit event")

    def report(self, force: bool = False) -> None:
        """Log the refusals counted since the last report, one line per kind, at most
        once per :data:`REPORT_INTERVAL_S` (the sweeper calls this; ``force``: now)."""
        now = self._clock()
        if not self._unreported or (not force and now - self._reported_at < REPORT_INTERVAL_S):
            return
        seconds = round(now - self._reported_at, 1)
        self._reported_at = now
        counts, self._unreported = self._unreported, {}
        for kind, count in sorted(counts.items()):
            log.info(
                "handshakes refused", extra={"reason": kind, "count": count, "seconds": seconds}
            )
        # Forget audit samples whose interval has passed, so the table stays small.
        stale = [k for k, (at, folded) in self._audited.items() if now - at >= REPORT_INTERVAL_S]
        for key in stale:
            if not self._audited[key][1]:
                del self._audited[key]


def _address(peer: str) -> str:
    """The key of a peer's handshake bucket: its IPv4 address, or its IPv6 /64 (one
    host is commonly given a whole /64, so single addresses would be free to rotate)."""
    host, _, _ = peer.rpartition(":")
    host = host or peer
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.strip("[]"))
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def _token(request: AdmissionRequest) -> str | None:
    value = request.headers.get("authorization")
    if value is not None:
        scheme, _, token = value.partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None
    for offered in request.subprotocols:
        if offered.startswith(SUBPROTOCOL_TOKEN_PREFIX):
            return offered[len(SUBPROTOCOL_TOKEN_PREFIX) :] or None
    if request.query_token and request.query and len(request.query) <= _QUERY_MAX_BYTES:
        values = parse_qs(request.query).get("access_token")
        return values[0] if values else None
    return None
