"""Every open session of the process, and the sweeper's periodic checks.

One ticker for all sessions is cheaper than timers per session (2,000 idle sockets
would hold 2,000 timer handles and wake 2,000 times); a check every half second is
precise enough for "warn 60 s before expiry", "close at expiry" and "read nothing for
30 s".
"""

from __future__ import annotations

import asyncio
import logging
import time

from yamabiko.schema.session import SESSION_EXPIRING, ExpiringParams
from yamabiko.sessions.session import Session
from yamabiko.sessions.state import State
from yamabiko.sessions.transport import WS_4001_TOKEN_EXPIRED, WS_4008_SLOW_CONSUMER

log = logging.getLogger("yamabiko.session")


class SessionRegistry:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self.sessions)

    def add(self, session: Session) -> None:
        # Per-user counts are the admission's (yamabiko/server/admission.py), which
        # also counts handshakes still in flight.
        self.sessions[session.id] = session

    def remove(self, session: Session) -> None:
        self.sessions.pop(session.id, None)

    def sweep(self, now: float | None = None) -> None:
        """Warn of expiring tokens, close expired and slow sessions."""
        wall = time.time() if now is None else now
        mono = time.monotonic()
        for session in list(self.sessions.values()):
            if session.state is State.CLOSED or session.closing:
                continue
            exp = session.identity.exp
            if wall >= exp:
                log.info("token expired: closing", extra={"session": session.id})
                self.close_later(session, WS_4001_TOKEN_EXPIRED, "token expired")
                continue
            if not session.expiry_warned and wall >= exp - session.config.expiry_warning_s:
                session.expiry_warned = True
                session.notify(SESSION_EXPIRING, ExpiringParams(expires_at=session.expires_at()))
            if session.outbound.stalled_for(mono) > session.config.slow_consumer_s:
                log.info("client reads nothing: closing", extra={"session": session.id})
                self.close_later(session, WS_4008_SLOW_CONSUMER, "slow consumer")

    def close_later(self, session: Session, code: int, reason: str) -> None:
        # A close may wait for the client's closing handshake: never let one slow
        # client hold up the sweep of the others.
        task = asyncio.get_running_loop().create_task(session.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
