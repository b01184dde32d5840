"""The session lifecycle: initialize, ping, refresh, cancel, progress.

The rules are in docs/protocol.md, Lifecycle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from msgspec import Struct, field

from yamabiko.schema.base import Empty, EmptyResult, MethodSchema, Params, Result

INITIALIZE: Final = "initialize"
INITIALIZED: Final = "notifications/initialized"
PING: Final = "ping"
CANCELLED: Final = "notifications/cancelled"
PROGRESS: Final = "notifications/progress"
SESSION_REFRESH: Final = "session/refresh"
SESSION_EXPIRING: Final = "session/expiring"

YAMABIKO_PROTOCOL: Final = "yamabiko/1"
MCP_PROTOCOLS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
"""MCP versions whose initialize handshake we accept, newest first."""
NOTICE_COST: Final = 0.01
"""The rate cost of a bookkeeping notification (a cancel, a progress report): a hundred
take what one request takes, so they are bounded without being in anyone's way."""


class Implementation(Struct, kw_only=True, omit_defaults=True):
    name: str
    version: str = ""
    title: str | None = None


class AudioCapability(Struct, kw_only=True, omit_defaults=True):
    binary: bool = False
    """Send audio frames as binary WebSocket messages (docs/audio.md)."""


class DawCapability(Struct, kw_only=True, rename="camel", omit_defaults=True):
    apply_actions: bool = False
    """The client answers ``client/applyActions`` requests."""


class ClientCapabilities(Struct, kw_only=True, omit_defaults=True):
    audio: AudioCapability | None = None
    daw: DawCapability | None = None
    sampling: dict[str, Any] | None = None
    elicitation: dict[str, Any] | None = None
    roots: dict[str, Any] | None = None
    experimental: dict[str, Any] | None = None


class InitializeParams(Params):
    protocol_version: str
    client_info: Implementation | None = None
    capabilities: ClientCapabilities = field(default_factory=ClientCapabilities)


class Limits(Result):
    """What the session enforces, announced so a client never learns a limit by being
    cut off (docs/protocol.md, Lifecycle)."""

    max_message_bytes: int
    max_running_requests: int
    max_subscriptions: int
    outbound_queue_bytes: int
    ping_interval_ms: int
    requests_per_second: float
    request_burst: int
    max_batch_items: int
    max_audio_streams: int
    max_documents: int


class InitializeResult(Result):
    protocol_version: str
    server_info: Implementation
    capabilities: dict[str, Any]
    session_id: str
    limits: Limits
    instructions: str | None = None


class RefreshParams(Params):
    token: str


class RefreshResult(Result):
    expires_at: datetime


class ExpiringParams(Params):
    expires_at: datetime


class CancelledParams(Params):
    request_id: int | str
    reason: str | None = None


class ProgressParams(Params):
    progress_token: int | str
    progress: float
    total: float | None = None
    message: str | None = None


METHODS: Final = (
    MethodSchema(
        INITIALIZE,
        InitializeParams,
        InitializeResult,
        "Open the session: negotiate the protocol version and capabilities; learn the limits.",
    ),
    MethodSchema(
        INITIALIZED,
        Empty,
        None,
        "The client has processed the initialize result.",
        cost=0.0,
    ),
    MethodSchema(PING, Empty, EmptyResult, "Liveness check; served before initialize too."),
    MethodSchema(
        SESSION_REFRESH,
        RefreshParams,
        RefreshResult,
        "Swap the session's token for a fresh one of the same user and tenant.",
    ),
    MethodSchema(
        SESSION_EXPIRING,
        ExpiringParams,
        None,
        "Sent 60 s before the token expires; refresh or be closed with 4001 at expiry.",
        sender="server",
    ),
    MethodSchema(
        CANCELLED,
        CancelledParams,
        None,
        "Cancel a running request of the sender; its response becomes -32800.",
        sender="both",
        cost=NOTICE_COST,
    ),
    MethodSchema(
        PROGRESS,
        ProgressParams,
        None,
        "Progress of a request whose params carried _meta.progressToken.",
        cost=NOTICE_COST,
        sender="both",
    ),
)
