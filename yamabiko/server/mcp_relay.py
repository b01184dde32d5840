"""One MCP HTTP session's :class:`Session`: the socket's MCP methods, served to SDK
requests.

Theory of operation
-------------------
The Streamable HTTP face serves exactly the socket's MCP definition by running the
socket's own handlers (``tools/*``, ``resources/*``, ``prompts/*``,
``completion/complete``, ``logging/setLevel``) in a headless :class:`Session` per MCP
session: each SDK request is encoded as a JSON-RPC request and handed to
:meth:`Session.receive`, so method lookup, scopes, param validation, rate limits and
error codes are the socket's. The session's :class:`_Link` transport routes what the
session writes back:

- a response goes to the SDK request waiting for it (an error becomes ``MCPError``
  with the same code and message);
- ``notifications/progress`` to the SDK request that carried that progress token;
- ``notifications/message`` to the newest request still running (on its response
  stream), else the session's GET stream;
- ``notifications/resources/updated`` to the session's GET stream (through the SDK
  session of the latest request, whose standalone channel is the session's);
- everything else (stream notifications a tool reads for itself) nowhere.

The session is in the node's registry while it lives, so ``/metrics`` counts it and the
sweeper closes it when its token expires; a later request (with a fresh token) gets a
new one. Each request runs with its own token's identity: the face has bound the MCP
session to one user, and a token with other scopes gets a session of its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import mcp_types as types
import msgspec
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError

from yamabiko.schema.mcp import LOGGING_MESSAGE, RESOURCES_UPDATED
from yamabiko.schema.session import PROGRESS
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.session import Session
from yamabiko.sessions.state import State

log = logging.getLogger("yamabiko.mcp_http")

_MAX_SCOPE_SETS: Final = 4
"""Relays kept per MCP session (one per set of scopes its tokens carried)."""
_CALL_TIMEOUT_S: Final = 600.0
"""A request that gets no answer from its own session in this long is an internal
error (the handlers bound their own waits; this only guards against a lost answer)."""


class _Link:
    """The headless session's transport (see the module's docstring)."""

    __slots__ = ("closed", "latest", "on_close", "running", "waiting")

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.running: dict[int, tuple[ServerSession, Any, Any]] = {}
        """Our request id -> (the SDK request's session, its request id, its progress
        token)."""
        self.latest: ServerSession | None = None
        self.closed = False
        self.on_close: Any = None

    def try_send_text(self, data: bytes) -> bool:
        return False

    async def send_text(self, data: bytes) -> None:
        try:
            message = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return
        if isinstance(message, list):  # a batch answer: we send no batches
            return
        method = message.get("method")
        if method is None:
            waiter = self.waiting.get(message.get("id"))
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
            return
        params = message.get("params") or {}
        try:
            if method == PROGRESS:
                await self._progress(params)
            elif method == LOGGING_MESSAGE:
                await self._log(params)
            elif method == RESOURCES_UPDATED and self.latest is not None:
                await self.latest.send_resource_updated(str(params.get("uri", "")))
        except Exception:
            # The client's stream is gone (it reconnects and replays from the event store).
            log.debug("an MCP notification could not be delivered", exc_info=True)

    async def _progress(self, params: dict[str, Any]) -> None:
        token = params.get("progressToken")
        for sdk, _, progress_token in list(self.running.values()):
            if progress_token is not None and progress_token == token:
                await sdk.report_progress(
                    params.get("progress", 0), params.get("total"), params.get("message")
                )
                return

    async def _log(self, params: dict[str, Any]) -> None:
        note = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams.model_validate(params)
        )
        if self.running:
            sdk, request_id, _ = self.running[max(self.running)]
            await sdk.send_notification(note, related_request_id=request_id)
        elif self.latest is not None:
            await self.latest.send_notification(note)

    async def send_binary(self, data: bytes) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        # The sweeper closes the session when its token expires: the next request,
        # with a fresh token, gets a new one.
        self.closed = True
        if self.on_close is not None:
            self.on_close()


class Relay:
    """The headless session of one MCP session (or of one stateless request)."""

    def __init__(self, backend: Any, identity: Identity) -> None:
        self._backend = backend
        self._link = _Link()
        self._link.on_close = self.close
        self._ids = 0
        self.session = Session(
            self._link,
            backend.methods,
            identity=identity,
            config=backend.session_config,
            stats=backend.stats,
            rate_limiter=backend.rate_limiter,
            subprotocol="mcp",
            services=backend.services,
        )
        # The SDK negotiated the MCP version on this face: the session adopts it.
        self.session.initialized(None)
        if backend.registry is not None:
            backend.registry.add(self.session)

    @property
    def closed(self) -> bool:
        return self._link.closed or self.session.state is State.CLOSED

    async def call(
        self,
        sdk: ServerSession,
        request_id: Any,
        identity: Identity,
        method: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """Run ``method`` in the session; its result, or ``MCPError``."""
        session = self.session
        session.identity = identity
        session.protocol_version = sdk.protocol_version
        self._ids += 1
        our_id = self._ids
        meta = params.get("_meta")
        progress_token = meta.get("progressToken") if isinstance(meta, dict) else None
        link = self._link
        link.latest = sdk
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.waiting[our_id] = waiter
        link.running[our_id] = (sdk, request_id, progress_token)
        request = {"jsonrpc": "2.0", "id": our_id, "method": method, "params": params}
        try:
            await session.receive(msgspec.json.encode(request))
            async with asyncio.timeout(_CALL_TIMEOUT_S):
                answer = await waiter
        except asyncio.CancelledError:
            session.cancel_request(our_id)
            raise
        finally:
            link.waiting.pop(our_id, None)
            link.running.pop(our_id, None)
        error = answer.get("error")
        if error is not None:
            raise MCPError(error.get("code", -32603), error.get("message", ""), error.get("data"))
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    def close(self) -> None:
        registry = self._backend.registry
        if registry is not None:
            registry.remove(self.session)
        self.session.shutdown()
        for waiter in self._link.waiting.values():
            if not waiter.done():
                waiter.cancel()


class Relays:
    """The relays of this node's MCP sessions, by ``Mcp-Session-Id`` and scopes: a
    request runs in a session whose identity has its own token's scopes, so two
    requests of one MCP session with tokens of different scopes never see each
    other's (the face has already bound the MCP session to one user)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._by_session: dict[str, dict[frozenset[str], Relay]] = {}

    def __len__(self) -> int:
        return sum(len(relays) for relays in self._by_session.values())

    def get(self, session_id: str, identity: Identity) -> Relay:
        relays = self._by_session.setdefault(session_id, {})
        scopes = frozenset(identity.scopes)
        relay = relays.get(scopes)
        if relay is None or relay.closed:
            if len(relays) >= _MAX_SCOPE_SETS:
                # Tokens of ever new scope sets on one MCP session: keep the newest.
                oldest = next(iter(relays))
                relays.pop(oldest).close()
            relay = relays[scopes] = Relay(self._backend, identity)
        return relay

    def one_off(self, identity: Identity) -> Relay:
        return Relay(self._backend, identity)

    def forget(self, session_id: str) -> None:
        for relay in self._by_session.pop(session_id, {}).values():
            relay.close()

    def close(self) -> None:
        for session_id in list(self._by_session):
            self.forget(session_id)
