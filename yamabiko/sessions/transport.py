"""The write-only interface a session uses to reach its socket.

A session never reads from its socket: the server's read loop feeds it messages. So a
second socket library needs only these three methods.
"""

from __future__ import annotations

from typing import Final, Protocol

WS_1000_NORMAL: Final = 1000
WS_1001_GOING_AWAY: Final = 1001
WS_1008_POLICY_VIOLATION: Final = 1008
WS_1009_MESSAGE_TOO_BIG: Final = 1009
WS_1011_INTERNAL_ERROR: Final = 1011
WS_4001_TOKEN_EXPIRED: Final = 4001
"""The token expired or was revoked: get a new token, then reconnect."""
WS_4008_SLOW_CONSUMER: Final = 4008
"""The client read nothing for too long: reconnect and resume streams with afterSeq."""


class Transport(Protocol):
    """Guarantees expected of an implementation: messages are written in call order;
    ``send_*`` returns once the message is handed to the OS or buffered under the
    library's write limit, and waits (never drops) when the buffer is full; after
    ``close`` every ``send_*`` raises ``ConnectionError``."""

    async def send_text(self, data: bytes) -> None:
        """Send one UTF-8 JSON text frame, already encoded."""

    def try_send_text(self, data: bytes) -> bool:
        """Hand one text frame to the socket now, without waiting, if the connection
        takes it at once (open, not pushing back); False if not (then the caller
        sends it with :meth:`send_text`)."""

    async def send_binary(self, data: bytes) -> None:
        """Send one binary frame (audio)."""

    async def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code."""
