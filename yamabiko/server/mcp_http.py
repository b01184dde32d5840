"""The MCP Streamable HTTP face: the socket's MCP server (tools, resources, prompts,
completion, logging) through the SDK's low-level ``Server``, on ``settings.mcp_port``
at ``/mcp``; served by uvicorn through its public ``Server.serve``.

Theory of operation
-------------------
:func:`build_asgi` wraps the SDK's Streamable HTTP app in :class:`McpAdmission`, which
puts every request to the node's :class:`~yamabiko.server.admission.Admission`, the
same rules as the socket's handshake (origin, token, refusals counted and audited),
before the SDK sees it, and leaves the :class:`Identity` in the ASGI scope. The SDK
hands each MCP request its HTTP request, so every request is served as the identity of
its own token, even within one MCP session.

Sessions (``Mcp-Session-Id``) are ours to bound and to bind. A request that opens one
holds a place of its user (``max_mcp_sessions_per_user``, counted by the admission with
the requests still in flight); the place stays with the session until it is deleted or
idle for ``mcp_session_idle_s`` (the SDK's own idle timeout is the same). Each session
belongs to the (tenant, subject) that opened it: a request naming it with another
user's token is answered 404, as for an unknown session, for POST, GET and DELETE alike.
The SDK's own check compares the principal of ``scope["user"]``; that principal's
subject is the JSON pair ``[tenant, subject]``, so the SDK's check binds the tenant too.

Every MCP method is the socket's: each SDK request runs the socket's handlers in the
MCP session's headless :class:`~yamabiko.sessions.session.Session`
(:mod:`yamabiko.server.mcp_relay`), which is in the node's session registry while the
MCP session lives. Notifications (progress, log messages, resource updates) come back
through it to the SDK. With an MCP session, every SSE event has an id and is stored in
the node's broker first (:mod:`yamabiko.server.mcp_events`), so a dropped stream is
resumed with ``Last-Event-ID``.

The SDK's server speaks both the ``initialize`` handshake versions (stateful, with
``Mcp-Session-Id``) and its stateless per-request era; ``stateless=True`` also makes
the handshake era stateless (no session ids, no server-to-client stream).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import msgspec
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from yamabiko.server.admission import Admission, AdmissionRequest, Refusal, Ticket
from yamabiko.server.mcp_events import CURRENT, BrokerEventStore, SessionTag, session_of
from yamabiko.server.mcp_methods import METHODS, as_result
from yamabiko.server.mcp_relay import Relays
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.session import RateLimiter

log = logging.getLogger("yamabiko.mcp_http")

PATH: Final = "/mcp"
IDENTITY_KEY: Final = "yamabiko.identity"
"""Where :class:`McpAdmission` leaves the verified identity in the ASGI scope."""
SESSION_HEADER: Final = "mcp-session-id"
_CLIENT_ID: Final = "yamabiko"
_SWEEP_EVERY_S: Final = 1.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SESSION_KEY: Final = "yamabiko.mcpSession"
"""Where :class:`McpAdmission` leaves the request's admitted MCP session id."""
LAST_EVENT_ID: Final = "last-event-id"
_STARTED_WITHIN_S: Final = 10.0


class Backend(msgspec.Struct, frozen=True):
    """What the face needs from the app (an :class:`~yamabiko.server.app.App` has it)."""

    admission: Admission
    methods: Any
    session_config: Any
    services: Any
    rate_limiter: RateLimiter | None = None
    session_idle_s: float = 300.0
    registry: Any = None
    """The node's session registry: MCP sessions are counted with the sockets."""
    stats: Any = None


def backend_of(app: Any) -> Backend:
    return Backend(
        app.admission,
        app.methods,
        app.session_config,
        app.services,
        app.rate_limiter,
        app.options.mcp_session_idle_s,
        app.registry,
        app.stats,
    )


def build_server(backend: Backend, relays: Relays) -> Server[Any]:
    """The SDK server whose MCP methods run the socket's handlers (see
    :mod:`yamabiko.server.mcp_relay`)."""
    config = backend.session_config
    server: Server[Any] = Server(
        config.server_name, version=config.server_version, instructions=config.instructions
    )

    def handler(method: str) -> Callable[[ServerRequestContext[Any, Any], Any], Awaitable[Any]]:
        async def handle(ctx: ServerRequestContext[Any, Any], params: Any) -> BaseModel:
            scope = getattr(ctx.request, "scope", {})
            identity = scope.get(IDENTITY_KEY)
            if not isinstance(identity, Identity):  # only reachable without McpAdmission
                raise PermissionError("no verified identity for this request")
            session_id = scope.get(SESSION_KEY)
            if session_id is None:  # stateless: a session for this request alone
                relay = relays.one_off(identity)
                try:
                    result = await relay.call(
                        ctx.session, ctx.request_id, identity, method, dict(ctx.params or {})
                    )
                finally:
                    relay.close()
            else:
                result = await relays.get(session_id, identity).call(
                    ctx.session, ctx.request_id, identity, method, dict(ctx.params or {})
                )
            try:
                return as_result(method, result)
            except ValueError:
                log.exception("a result did not fit the MCP types", extra={"method": method})
                raise MCPError(-32603, "internal error: the result could not be encoded") from None

        return handle

    for method, types_of in METHODS.items():
        server.add_request_handler(method, types_of.params, handler(method))
    return server


class _McpSession:
    """What we keep of one open MCP session: its owner, its held place, and when it
    last had no request in flight (a few dozen bytes: the SDK holds the rest)."""

    __slots__ = ("idle_since", "in_flight", "owner", "ticket")

    def __init__(self, ticket: Ticket, now: float) -> None:
        self.ticket = ticket
        self.owner = (ticket.identity.tid, ticket.identity.sub)
        self.in_flight = 0
        self.idle_since = now


class McpAdmission:
    """ASGI middleware: every HTTP request admitted by the app's
    :class:`~yamabiko.server.admission.Admission` (403 for a foreign ``Origin``, 401 and
    ``WWW-Authenticate`` without a valid bearer token, 429 past the user's session
    limit), its :class:`Identity` at ``scope[IDENTITY_KEY]``; sessions bound to the user
    that opened them and reaped when idle (see the module's docstring)."""

    def __init__(
        self,
        inner: ASGIApp,
        backend: Backend,
        *,
        relays: Relays | None = None,
        stateless: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.relays = relays if relays is not None else Relays(backend)
        self.admission = backend.admission
        self.idle_s = backend.session_idle_s
        self.stateless = stateless
        self.sessions: dict[str, _McpSession] = {}
        self._clock = clock
        self._swept_at = clock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        session_id = headers.get(SESSION_HEADER)
        opening = session_id is None and scope["method"] == "POST" and not self.stateless
        client = scope.get("client")
        request = AdmissionRequest(
            path=scope.get("path", PATH),
            headers=headers,
            peer=f"{client[0]}:{client[1]}" if client else "?",
            query_token=False,
        )
        if opening:
            self._sweep()
        admitted = await self.admission.admit(request, hold="mcp_session" if opening else None)
        if isinstance(admitted, Refusal):
            await _send_refusal(send, admitted)
            return
        self.admission.stats.mcp_requests += 1
        identity = admitted.identity
        scope = {**scope, IDENTITY_KEY: identity, "user": _principal(identity)}
        if opening:
            CURRENT.set(SessionTag(identity.tid, identity.sub))
            await self._open(admitted, scope, receive, send)
        elif session_id is not None:
            await self._within(session_id, identity, scope, receive, send)
        else:
            await self.inner(scope, receive, send)

    async def _open(self, ticket: Ticket, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request that may open a session: the ticket's place goes to the
        session if the SDK opened one, else back at the end of the request."""
        opened: list[_McpSession] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                for name, value in message.get("headers", ()):
                    if name.lower() == SESSION_HEADER.encode():
                        entry = _McpSession(ticket, self._clock())
                        entry.in_flight = 1
                        session_id = value.decode("latin-1")
                        self.sessions[session_id] = entry
                        opened.append(entry)
                        tag = CURRENT.get()
                        if tag is not None:  # the session's events are stored under it
                            tag.session_id = session_id
            await send(message)

        try:
            await self.inner(scope, receive, watch)
        finally:
            if opened:
                opened[0].in_flight -= 1
                opened[0].idle_since = self._clock()
            else:
                ticket.release()

    async def _within(
        self, session_id: str, identity: Identity, scope: Scope, receive: Receive, send: Send
    ) -> None:
        entry = self.sessions.get(session_id)
        if entry is not None and entry.in_flight == 0 and self._idle(entry, self._clock()):
            self._forget(session_id, entry)
            entry = None
        if entry is None or entry.owner != (identity.tid, identity.sub):
            if entry is not None:
                log.warning(
                    "MCP session used with another user's token",
                    extra={"sub": identity.sub, "tid": identity.tid},
                )
            await _send_not_found(send)
            return
        last_event = next(
            (v for k, v in scope["headers"] if k.lower() == LAST_EVENT_ID.encode()), None
        )
        if last_event is not None and session_of(last_event.decode("latin-1")) != session_id:
            # Another session's events are not this one's to replay.
            await _send_not_found(send)
            return
        CURRENT.set(SessionTag(identity.tid, identity.sub, session_id))
        scope = {**scope, SESSION_KEY: session_id}
        entry.in_flight += 1
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.inner(scope, receive, watch)
        finally:
            entry.in_flight -= 1
            entry.idle_since = self._clock()
            deleted = scope["method"] == "DELETE" and status and status[0] < 400
            if deleted or (status and status[0] == 404):
                self._forget(session_id, entry)

    def _idle(self, entry: _McpSession, now: float) -> bool:
        return now - entry.idle_since >= self.idle_s

    def _forget(self, session_id: str, entry: _McpSession) -> None:
        if self.sessions.get(session_id) is entry:
            del self.sessions[session_id]
        entry.ticket.release()
        self.relays.forget(session_id)

    def _sweep(self) -> None:
        """Give back the places of sessions idle past the limit (the SDK closes them on
        the same timeout); at most once a second, when a session is being opened."""
        now = self._clock()
        if now - self._swept_at < _SWEEP_EVERY_S:
            return
        self._swept_at = now
        idle = [
            (sid, e) for sid, e in self.sessions.items() if e.in_flight == 0 and self._idle(e, now)
        ]
        for session_id, entry in idle:
            self._forget(session_id, entry)


def _principal(identity: Identity) -> AuthenticatedUser:
    """What the SDK compares to bind a session to its owner: (client id, issuer,
    subject). The subject is ``[tenant, sub]`` as JSON, unambiguous whatever the names
    hold, so "alice" of one tenant is never "alice" of another."""
    subject = json.dumps([identity.tid, identity.sub], separators=(",", ":"))
    # The token itself is not needed past admission: it is not kept here.
    access = AccessToken(
        token="-", client_id=_CLIENT_ID, scopes=sorted(identity.scopes), subject=subject
    )
    return AuthenticatedUser(access)


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    body = refusal.reason.encode() + b"\n"
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers += [(name.lower().encode(), value.encode()) for name, value in refusal.headers]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_NOT_FOUND: Final = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
)


async def _send_not_found(send: Send) -> None:
    """The SDK's answer to an unknown session id: an owner's session and a missing one
    must look the same to anyone else."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_NOT_FOUND)).encode()),
    ]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": _NOT_FOUND})


def build_asgi(
    backend: Backend, *, host: str = "127.0.0.1", stateless: bool = False
) -> McpAdmission:
    """The ASGI app: admission in front of the SDK's Streamable HTTP app at ``/mcp``."""
    relays = Relays(backend)
    server = build_server(backend, relays)
    inner = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=stateless,
        host=host,
        session_idle_timeout=backend.session_idle_s,
        event_store=None if stateless else BrokerEventStore(backend.services.broker),
        # Origins are the admission's (YAMABIKO_ALLOWED_ORIGINS, as on the socket); the
        # SDK's localhost-only guard would refuse an origin the operator allowed.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return McpAdmission(inner, backend, relays=relays, stateless=stateless)


class _Started:
    """ASGI wrapper that tells when the app's lifespan startup is complete (uvicorn
    then serves the socket it was given, already listening)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.event = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.inner(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.event.set()

        await self.inner(scope, receive, watch)


class McpHttp:
    """The face's HTTP server: uvicorn's public ``Server.serve`` in a task of this
    event loop, on a socket we bind (so a busy port is our error, said at once);
    :meth:`start` returns once it serves, :meth:`stop` asks it to exit and waits."""

    def __init__(self, backend: Backend, host: str, port: int, *, stateless: bool = False) -> None:
        self.host = host
        self.app = build_asgi(backend, host=host, stateless=stateless)
        self._started = _Started(self.app)
        self._config = uvicorn.Config(
            self._started,
            host=host,
            port=port,
            lifespan="on",
            ws="none",
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sockets: list[socket.socket] = []

    async def start(self) -> None:
        config = self._config
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._sockets = [socket.create_server((self.host, config.port), family=family)]
        except OSError as exc:
            raise OSError(f"cannot listen on {self.host}:{config.port}: {exc.strerror}") from None
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=self._sockets))
        started = asyncio.ensure_future(self._started.event.wait())
        done, _ = await asyncio.wait(
            {task, started}, timeout=_STARTED_WITHIN_S, return_when=asyncio.FIRST_COMPLETED
        )
        if started not in done:
            started.cancel()
            server.should_exit = True
            await asyncio.wait({task}, timeout=_STARTED_WITHIN_S)
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("the MCP HTTP face failed to start", exc_info=task.exception())
            self._close_sockets()
            raise OSError(f"cannot serve MCP on {self.host}:{config.port}: see the log")
        self._server, self._task = server, task

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()

    @property
    def port(self) -> int:
        return int(self._sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    async def stop(self) -> None:
        server, self._server = self._server, None
        task, self._task = self._task, None
        if server is None or task is None:
            return
        server.should_exit = True
        # uvicorn bounds its own graceful shutdown (timeout_graceful_shutdown).
        await task
        self.app.relays.close()
        self._close_sockets()


async def start_mcp_http(app: Any, host: str, port: int) -> McpHttp | None:
    """Start the face for ``app``; None (the reason on stderr) if its port cannot be
    had: the socket serves on without it (several nodes on one host, say)."""
    face = McpHttp(backend_of(app), host, port)
    try:
        await face.start()
    except OSError as exc:
        print(f"yamabiko: MCP HTTP face not started: {exc}", file=sys.stderr, flush=True)
        return None
    return face
